//! The reference object the linearizability checks use: one znode's data and version, with
//! reads and versioned compare-and-set (setData with an expected version).

use stateright::semantics::SequentialSpec;

#[derive(Clone, Debug, Default)]
pub struct VersionedRegister {
    pub value: u64,
    pub version: i32,
}

#[derive(Clone, Debug)]
pub enum Op {
    Read,
    Cas { expect: i32, value: u64 },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Ret {
    Read { value: u64, version: i32 },
    CasOk { version: i32 },
    BadVersion,
}

impl SequentialSpec for VersionedRegister {
    type Op = Op;
    type Ret = Ret;
    fn invoke(&mut self, op: &Op) -> Ret {
        match op {
            Op::Read => Ret::Read { value: self.value, version: self.version },
            Op::Cas { expect, value } if *expect == self.version => {
                self.value = *value;
                self.version += 1;
                Ret::CasOk { version: self.version }
            }
            Op::Cas { .. } => Ret::BadVersion,
        }
    }
}
