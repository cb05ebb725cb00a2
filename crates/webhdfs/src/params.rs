//! The query string of a WebHDFS request, parsed as Hadoop's `ParamFilter` and `*Param` classes
//! do: parameter names in any case, `op` values in any case, booleans in any case, numbers in
//! decimal (permissions in octal), each bad value an `IllegalArgumentException` naming the
//! parameter.

use std::collections::BTreeMap;

use crate::error::WebError;

/// The parameters of one request, names lower-cased. A repeated name keeps its first value.
#[derive(Debug, Default, Clone)]
pub struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    pub fn parse(query: Option<&str>) -> Params {
        let mut values = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            values.entry(k.to_ascii_lowercase()).or_insert_with(|| v.into_owned());
        }
        Params { values }
    }

    /// The raw value, `None` when absent or empty (Hadoop treats `x=` as unset).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A value a request cannot do without (Hadoop's `validateOpParams`).
    pub fn required(&self, name: &str, op: &str) -> Result<&str, WebError> {
        self.get(name)
            .ok_or_else(|| WebError::illegal_argument(format!("Required param {name} for op: {op} is null or empty")))
    }

    pub fn bool(&self, name: &str, default: bool) -> Result<bool, WebError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(invalid(name, format!("Failed to parse \"{v}\" to Boolean."))),
        }
    }

    /// A decimal integer of at least `min` (Hadoop's `LongParam` with its domain's bound).
    pub fn long(&self, name: &str, min: i64) -> Result<Option<i64>, WebError> {
        let Some(v) = self.get(name) else { return Ok(None) };
        let n: i64 =
            v.parse().map_err(|_| invalid(name, format!("Failed to parse \"{v}\" as a radix-10 long integer.")))?;
        if n < min {
            return Err(invalid(name, format!("Invalid parameter range: {name} = {n} < {min}")));
        }
        Ok(Some(n))
    }

    /// [`Params::long`] that must also fit in `u64` (offsets, lengths, sizes).
    pub fn size(&self, name: &str) -> Result<Option<u64>, WebError> {
        Ok(self.long(name, 0)?.map(|n| n as u64))
    }

    /// A replication factor: a short of at least 1.
    pub fn replication(&self) -> Result<Option<u16>, WebError> {
        let Some(n) = self.long("replication", 1)? else { return Ok(None) };
        u16::try_from(n)
            .ok()
            .filter(|r| *r <= i16::MAX as u16)
            .map(Some)
            .ok_or_else(|| invalid("replication", format!("Failed to parse \"{n}\" as a radix-10 short integer.")))
    }

    /// Permission bits in octal, sticky bit allowed (Hadoop's `PermissionParam`: `[0-1]?[0-7]{3}`).
    pub fn permission(&self, default: u16) -> Result<u16, WebError> {
        let Some(v) = self.get("permission") else { return Ok(default) };
        let ok = (3..=4).contains(&v.len())
            && v.bytes().all(|b| (b'0'..=b'7').contains(&b))
            && (v.len() == 3 || matches!(v.as_bytes()[0], b'0' | b'1'));
        if !ok {
            return Err(invalid(
                "permission",
                format!("Invalid value: \"{v}\" does not belong to the domain ^[0-1]?[0-7][0-7][0-7]$"),
            ));
        }
        Ok(u16::from_str_radix(v, 8).expect("checked octal digits"))
    }

    /// The user the request acts as (Hadoop's pseudo-authentication): `user.name`, or the web
    /// server's static user. `doas` is allowed only as the same user: herd has no proxy users.
    pub fn user(&self, default_user: &str) -> Result<String, WebError> {
        let user = self.get("user.name").unwrap_or(default_user);
        if let Some(doas) = self.get("doas") {
            if doas != user {
                return Err(WebError::access_denied(format!("User: {user} is not allowed to impersonate {doas}")));
            }
        }
        if !valid_user_name(user) {
            return Err(invalid(
                "user.name",
                format!("Invalid value: \"{user}\" does not belong to the domain ^[A-Za-z_][A-Za-z0-9._-]*[$]?$"),
            ));
        }
        Ok(user.to_string())
    }

    /// Parses every typed parameter present, whatever the op: Hadoop's handlers declare them
    /// all, so a bad `length` is refused even where the op would not use it.
    pub fn check_all(&self) -> Result<(), WebError> {
        for name in ["overwrite", "recursive", "noredirect", "createparent"] {
            self.bool(name, false)?;
        }
        for name in ["offset", "length", "blocksize", "newlength"] {
            self.size(name)?;
        }
        self.long("buffersize", 1)?;
        self.long("modificationtime", -1)?;
        self.long("accesstime", -1)?;
        self.replication()?;
        self.permission(0)?;
        Ok(())
    }

    /// `excludedatanodes`: comma-separated DataNode names (`host:port`, or ids).
    pub fn excluded_datanodes(&self) -> Vec<String> {
        self.get("excludedatanodes")
            .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
            .unwrap_or_default()
    }

    /// Every parameter, for the redirect to a DataNode (names lower-cased; `op` first).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Hadoop's `UserParam` domain (`dfs.webhdfs.user.provider.user.pattern`).
fn valid_user_name(u: &str) -> bool {
    let body = u.strip_suffix('$').unwrap_or(u);
    let mut bytes = body.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn invalid(name: &str, why: String) -> WebError {
    WebError::illegal_argument(format!("Invalid value for webhdfs parameter \"{name}\": {why}"))
}

/// The HTTP method a WebHDFS op belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
    Post,
    Delete,
}

impl Method {
    /// Hadoop's enum class for the method's ops (named in the error for an unknown op).
    fn class(self) -> &'static str {
        match self {
            Method::Get => "GetOpParam",
            Method::Put => "PutOpParam",
            Method::Post => "PostOpParam",
            Method::Delete => "DeleteOpParam",
        }
    }

    /// Every op Hadoop 3 knows for this method: herd serves the ones in [`Op`] and answers the
    /// rest `UnsupportedOperationException` (400), as Hadoop does for an op it knows but does
    /// not serve on that node.
    fn hadoop_ops(self) -> &'static [&'static str] {
        match self {
            Method::Get => &[
                "OPEN",
                "GETFILESTATUS",
                "LISTSTATUS",
                "GETCONTENTSUMMARY",
                "GETQUOTAUSAGE",
                "GETFILECHECKSUM",
                "GETHOMEDIRECTORY",
                "GETDELEGATIONTOKEN",
                "GET_BLOCK_LOCATIONS",
                "GETFILEBLOCKLOCATIONS",
                "GETACLSTATUS",
                "GETXATTRS",
                "LISTXATTRS",
                "GETTRASHROOT",
                "LISTSTATUS_BATCH",
                "GETALLSTORAGEPOLICY",
                "GETSTORAGEPOLICY",
                "GETSERVERDEFAULTS",
                "CHECKACCESS",
                "GETSNAPSHOTDIFF",
                "GETSNAPSHOTDIFFLISTING",
                "GETSNAPSHOTTABLEDIRECTORYLIST",
                "GETSNAPSHOTLIST",
                "GETLINKTARGET",
                "GETFILELINKSTATUS",
                "GETSTATUS",
                "GETECPOLICY",
                "GETTRASHROOTS",
                "GETECPOLICIES",
                "GETECCODECS",
                "NULL",
            ],
            Method::Put => &[
                "CREATE",
                "MKDIRS",
                "CREATESYMLINK",
                "RENAME",
                "SETREPLICATION",
                "SETOWNER",
                "SETPERMISSION",
                "SETTIMES",
                "RENEWDELEGATIONTOKEN",
                "CANCELDELEGATIONTOKEN",
                "MODIFYACLENTRIES",
                "REMOVEACLENTRIES",
                "REMOVEDEFAULTACL",
                "REMOVEACL",
                "SETACL",
                "SETXATTR",
                "REMOVEXATTR",
                "ENABLEECPOLICY",
                "DISABLEECPOLICY",
                "SETECPOLICY",
                "ALLOWSNAPSHOT",
                "DISALLOWSNAPSHOT",
                "CREATESNAPSHOT",
                "RENAMESNAPSHOT",
                "SETSTORAGEPOLICY",
                "SATISFYSTORAGEPOLICY",
                "SETQUOTA",
                "SETQUOTABYSTORAGETYPE",
                "NULL",
            ],
            Method::Post => &["APPEND", "CONCAT", "TRUNCATE", "UNSETECPOLICY", "UNSETSTORAGEPOLICY", "NULL"],
            Method::Delete => &["DELETE", "DELETESNAPSHOT", "NULL"],
        }
    }
}

/// The ops herd serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Open,
    GetFileStatus,
    ListStatus,
    ListStatusBatch,
    GetContentSummary,
    GetFileChecksum,
    GetHomeDirectory,
    GetTrashRoot,
    GetFileBlockLocations,
    Create,
    Mkdirs,
    Rename,
    SetReplication,
    SetOwner,
    SetPermission,
    SetTimes,
    Append,
    Concat,
    Truncate,
    Delete,
}

impl Op {
    const ALL: [(Op, Method, &'static str); 20] = [
        (Op::Open, Method::Get, "OPEN"),
        (Op::GetFileStatus, Method::Get, "GETFILESTATUS"),
        (Op::ListStatus, Method::Get, "LISTSTATUS"),
        (Op::ListStatusBatch, Method::Get, "LISTSTATUS_BATCH"),
        (Op::GetContentSummary, Method::Get, "GETCONTENTSUMMARY"),
        (Op::GetFileChecksum, Method::Get, "GETFILECHECKSUM"),
        (Op::GetHomeDirectory, Method::Get, "GETHOMEDIRECTORY"),
        (Op::GetTrashRoot, Method::Get, "GETTRASHROOT"),
        (Op::GetFileBlockLocations, Method::Get, "GETFILEBLOCKLOCATIONS"),
        (Op::Create, Method::Put, "CREATE"),
        (Op::Mkdirs, Method::Put, "MKDIRS"),
        (Op::Rename, Method::Put, "RENAME"),
        (Op::SetReplication, Method::Put, "SETREPLICATION"),
        (Op::SetOwner, Method::Put, "SETOWNER"),
        (Op::SetPermission, Method::Put, "SETPERMISSION"),
        (Op::SetTimes, Method::Put, "SETTIMES"),
        (Op::Append, Method::Post, "APPEND"),
        (Op::Concat, Method::Post, "CONCAT"),
        (Op::Truncate, Method::Post, "TRUNCATE"),
        (Op::Delete, Method::Delete, "DELETE"),
    ];

    pub fn name(self) -> &'static str {
        Op::ALL.iter().find(|(o, _, _)| *o == self).map(|(_, _, n)| *n).expect("every op is listed")
    }

    /// The request's op, as Hadoop resolves `op` for the method: an unknown name is
    /// `IllegalArgumentException`, a known one herd does not serve (or a missing op)
    /// `UnsupportedOperationException`, both 400.
    pub fn parse(method: Method, params: &Params) -> Result<Op, WebError> {
        let raw = params.get("op").unwrap_or("NULL");
        let upper = raw.to_ascii_uppercase();
        if let Some((op, _, _)) = Op::ALL.iter().find(|(_, m, n)| *m == method && *n == upper) {
            return Ok(*op);
        }
        if method.hadoop_ops().contains(&upper.as_str()) {
            return Err(WebError::unsupported(format!("op={upper} is not supported")));
        }
        Err(invalid(
            "op",
            format!("No enum constant org.apache.hadoop.hdfs.web.resources.{}.Op.{upper}", method.class()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Params {
        Params::parse(Some(q))
    }

    #[test]
    fn names_and_ops_in_any_case() {
        let q = p("OP=liststatus&User.Name=alice&recursive=True");
        assert_eq!(Op::parse(Method::Get, &q).unwrap(), Op::ListStatus);
        assert_eq!(q.user("dr.who").unwrap(), "alice");
        assert!(q.bool("recursive", false).unwrap());
        assert!(!p("recursive=FALSE").bool("recursive", true).unwrap());
        assert!(p("").bool("recursive", true).unwrap());
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let e = p("recursive=yes").bool("recursive", false).unwrap_err();
        assert_eq!((e.status, e.exception.as_str()), (400, "IllegalArgumentException"));
        assert!(e.message.contains("\"recursive\""), "{}", e.message);
        let e = p("offset=-1").size("offset").unwrap_err();
        assert!(e.message.contains("offset = -1 < 0"), "{}", e.message);
        let e = p("length=100000000000000000000000").size("length").unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(p("op=GETFILESTATUS&length=1e99").check_all().unwrap_err().status, 400);
        assert!(p("op=GETFILESTATUS&length=5&recursive=TRUE&permission=700").check_all().is_ok());
        assert!(p("permission=1777").permission(0o755).unwrap() == 0o1777);
        assert!(p("permission=2777").permission(0o755).is_err());
        assert!(p("permission=79").permission(0o755).is_err());
        assert_eq!(p("").permission(0o644).unwrap(), 0o644);
        assert!(p("replication=0").replication().is_err());
        assert_eq!(p("replication=3").replication().unwrap(), Some(3));
        assert!(p("user.name=a%20b").user("dr.who").is_err());
        assert_eq!(p("user.name=&x=1").user("dr.who").unwrap(), "dr.who");
        assert_eq!(p("doas=bob&user.name=alice").user("dr.who").unwrap_err().status, 403);
    }

    #[test]
    fn unknown_missing_and_misplaced_ops() {
        let e = Op::parse(Method::Get, &p("op=FROB")).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("GetOpParam.Op.FROB"), "{}", e.message);
        let e = Op::parse(Method::Get, &p("op=MKDIRS")).unwrap_err();
        assert!(e.message.contains("GetOpParam.Op.MKDIRS"), "{}", e.message);
        let e = Op::parse(Method::Get, &p("")).unwrap_err();
        assert_eq!((e.status, e.exception.as_str()), (400, "UnsupportedOperationException"));
        let e = Op::parse(Method::Get, &p("op=GETACLSTATUS")).unwrap_err();
        assert_eq!(e.exception, "UnsupportedOperationException");
        assert_eq!(Op::parse(Method::Post, &p("op=append")).unwrap(), Op::Append);
    }
}
