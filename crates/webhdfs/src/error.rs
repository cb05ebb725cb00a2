//! Errors as WebHDFS answers them: `{"RemoteException": {"exception", "javaClassName",
//! "message"}}` with the status Hadoop's `ExceptionHandler` gives the exception's class:
//! `FileNotFoundException` 404; `IllegalArgumentException` and its kin (a bad parameter, an
//! invalid path) and `UnsupportedOperationException` 400; `SecurityException` and every
//! `IOException` (`AccessControlException`, `FileAlreadyExistsException`, ...) 403; anything
//! else 500.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dfs_client::DfsError;
use dfs_proto::RemoteError;

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {exception}: {message}")]
pub struct WebError {
    pub status: u16,
    /// The simple class name (`FileNotFoundException`).
    pub exception: String,
    /// The fully qualified class (`java.io.FileNotFoundException`).
    pub java_class: String,
    pub message: String,
}

/// Runtime exceptions that are neither argument errors nor I/O errors: Hadoop answers 500.
const SERVER_ERRORS: &[&str] = &["NullPointerException", "IllegalStateException", "RuntimeException"];
/// Classes Hadoop answers 400 (subclasses of `IllegalArgumentException` included).
const BAD_REQUESTS: &[&str] = &[
    "IllegalArgumentException",
    "HadoopIllegalArgumentException",
    "InvalidPathException",
    "NumberFormatException",
    "UnsupportedOperationException",
];

impl WebError {
    /// An exception of class `java_class`, with the status Hadoop gives that class.
    pub fn of_class(java_class: &str, message: impl Into<String>) -> WebError {
        let exception = java_class.rsplit('.').next().unwrap_or(java_class).to_string();
        let status = match exception.as_str() {
            "FileNotFoundException" => 404,
            e if BAD_REQUESTS.contains(&e) => 400,
            e if SERVER_ERRORS.contains(&e) => 500,
            // SecurityException, and every IOException herd's servers throw.
            _ => 403,
        };
        WebError { status, exception, java_class: java_class.to_string(), message: message.into() }
    }

    pub fn illegal_argument(message: impl Into<String>) -> WebError {
        WebError::of_class("java.lang.IllegalArgumentException", message)
    }

    pub fn unsupported(message: impl Into<String>) -> WebError {
        WebError::of_class("java.lang.UnsupportedOperationException", message)
    }

    pub fn access_denied(message: impl Into<String>) -> WebError {
        WebError::of_class("org.apache.hadoop.security.AccessControlException", message)
    }

    pub fn not_found(message: impl Into<String>) -> WebError {
        WebError::of_class("java.io.FileNotFoundException", message)
    }

    pub fn io(message: impl Into<String>) -> WebError {
        WebError::of_class("java.io.IOException", message)
    }

    /// Hadoop's JSON for the exception.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({"RemoteException": {
            "exception": self.exception,
            "javaClassName": self.java_class,
            "message": self.message,
        }})
    }
}

impl From<RemoteError> for WebError {
    fn from(e: RemoteError) -> Self {
        WebError::of_class(&e.class, e.message)
    }
}

impl From<DfsError> for WebError {
    fn from(e: DfsError) -> Self {
        match e {
            DfsError::Remote(r) => r.into(),
            DfsError::Invalid(m) => WebError::illegal_argument(m),
            // A DataNode or NameNode that could not be reached, a pipeline with no survivor,
            // every replica failed: IOExceptions to a Hadoop client.
            other => WebError::io(other.to_string()),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, self.json().to_string()).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_hadoops_exception_handler() {
        let cases = [
            ("java.io.FileNotFoundException", 404),
            ("org.apache.hadoop.security.AccessControlException", 403),
            ("org.apache.hadoop.fs.FileAlreadyExistsException", 403),
            ("org.apache.hadoop.fs.InvalidPathException", 400),
            ("org.apache.hadoop.HadoopIllegalArgumentException", 400),
            ("java.lang.UnsupportedOperationException", 400),
            ("java.io.IOException", 403),
            ("java.lang.NullPointerException", 500),
        ];
        for (class, status) in cases {
            assert_eq!(WebError::of_class(class, "m").status, status, "{class}");
        }
        let e = WebError::not_found("File does not exist: /x");
        let j = e.json();
        assert_eq!(j["RemoteException"]["exception"], "FileNotFoundException");
        assert_eq!(j["RemoteException"]["javaClassName"], "java.io.FileNotFoundException");
        assert_eq!(j["RemoteException"]["message"], "File does not exist: /x");
    }
}
