//! Container tokens: the ResourceManager's proof that it allocated a container, which a
//! NodeManager checks before starting it, so the RM is not on the launch path and an AM cannot
//! forge capacity.
//!
//! The MAC is HMAC-SHA256 (RFC 2104) under the RM's secret (kept in the keeper) over
//! [`ContainerToken::mac_input`]: a fixed domain string, then the token's fields in the `rpc`
//! codec's canonical encoding, so that two different tokens never share a MAC input.

use crate::ids::{ApplicationAttemptId, ContainerId, NodeId};
use crate::records::Resource;
use rpc::codec::{Message, Writer};
use rpc::wire_struct;
use sha2::{Digest, Sha256};

/// Prefixed to every MAC input: a token's MAC is never valid for any other message signed
/// with the same secret.
const MAC_DOMAIN: &[u8] = b"herd container token v1\0";

wire_struct! {
    /// A container token: `container_id | node_id | resource | app_attempt | rm_epoch i64 |
    /// mac [u8; 32]`.
    pub struct ContainerToken {
        pub container_id: ContainerId,
        /// The only NodeManager that may start it.
        pub node_id: NodeId,
        /// What it may use (the NodeManager holds the process to it).
        pub resource: Resource,
        /// The attempt it belongs to: a NodeManager refuses a token of an attempt it knows
        /// is finished.
        pub app_attempt: ApplicationAttemptId,
        /// The ResourceManager's incarnation that signed it.
        pub rm_epoch: i64,
        /// HMAC-SHA256 of `mac_input()` under the RM's secret.
        pub mac: [u8; 32],
    }
}

impl ContainerToken {
    /// The bytes the MAC covers: the domain string, then every field but the MAC, encoded.
    pub fn mac_input(&self) -> Vec<u8> {
        let mut w = Writer { buf: MAC_DOMAIN.to_vec() };
        self.container_id.encode(&mut w);
        self.node_id.encode(&mut w);
        self.resource.encode(&mut w);
        self.app_attempt.encode(&mut w);
        w.i64(self.rm_epoch);
        w.buf
    }

    /// Sets the MAC under `secret`.
    pub fn sign(&mut self, secret: &[u8]) {
        self.mac = hmac_sha256(secret, &self.mac_input());
    }

    /// Whether the MAC is right for these fields under `secret` (compared in constant time).
    pub fn verify(&self, secret: &[u8]) -> bool {
        constant_time_eq(&self.mac, &hmac_sha256(secret, &self.mac_input()))
    }
}

/// HMAC-SHA256 per RFC 2104: H((K ^ opad) || H((K ^ ipad) || m)), K the key padded to the
/// 64-byte block (hashed first if longer).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

/// Equal slices, in time that depends on their length only (not on where they differ), so a
/// forger learns nothing from how long a refusal takes.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ApplicationId;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 1: a 20-byte key.
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2: a key shorter than the block.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block (hashed first).
        assert_eq!(
            hex(&hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    fn token() -> ContainerToken {
        let app_attempt =
            ApplicationAttemptId { app: ApplicationId { cluster_ts: 1_700_000_000_000, seq: 3 }, attempt: 2 };
        ContainerToken {
            container_id: ContainerId { attempt: app_attempt, epoch: 1, seq: 7 },
            node_id: NodeId { host: "nm1".into(), port: 8041 },
            resource: Resource { memory_mb: 1024, vcores: 1 },
            app_attempt,
            rm_epoch: 0x1_0000_0042,
            mac: [0; 32],
        }
    }

    #[test]
    fn a_signed_token_verifies_under_its_secret_only() {
        let mut t = token();
        assert!(!t.verify(b"secret"), "an unsigned token verified");
        t.sign(b"secret");
        assert!(t.verify(b"secret"));
        assert!(!t.verify(b"secreT"));
        assert!(!t.verify(b""));
        // The MAC survives the wire.
        let back = ContainerToken::from_bytes(&t.to_bytes()).unwrap();
        assert!(back.verify(b"secret"));
    }

    #[test]
    fn changing_any_field_or_mac_bit_fails_verification() {
        let mut signed = token();
        signed.sign(b"secret");
        let tampered: Vec<fn(&mut ContainerToken)> = vec![
            |t| t.container_id.seq += 1,
            |t| t.container_id.epoch = 0,
            |t| t.container_id.attempt.attempt = 1,
            |t| t.node_id.host = "nm2".into(),
            |t| t.node_id.port = 8042,
            |t| t.resource.memory_mb = 1 << 20,
            |t| t.resource.vcores = 8,
            |t| t.app_attempt.attempt = 3,
            |t| t.app_attempt.app.seq = 4,
            |t| t.rm_epoch += 1,
        ];
        for (i, change) in tampered.iter().enumerate() {
            let mut t = signed.clone();
            change(&mut t);
            assert!(!t.verify(b"secret"), "change {i} still verifies");
        }
        for bit in 0..256 {
            let mut t = signed.clone();
            t.mac[bit / 8] ^= 1 << (bit % 8);
            assert!(!t.verify(b"secret"), "MAC with bit {bit} flipped verifies");
        }
        // Field boundaries are in the input: moving bytes between the host and what follows
        // changes it.
        let mut a = token();
        a.node_id.host = "nm1\0".into();
        assert_ne!(a.mac_input(), token().mac_input());
    }
}
