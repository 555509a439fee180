//! Cognito's error vocabulary: the `__type` names, HTTP statuses and the exact messages real pools send.
//!
//! The auth and user models return these; `wire.rs` turns them into the body and headers Cognito sends.

use std::fmt;

/// The error types the local pool can answer with (the `__type` of a Cognito error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotAuthorized,
    UserNotFound,
    UsernameExists,
    TooManyRequests,
    UserLambdaValidation,
    InvalidLambdaResponse,
    UnexpectedLambda,
    InvalidParameter,
    ResourceNotFound,
    CodeMismatch,
    InternalError,
    UnknownOperation,
    Serialization,
    MissingAuthenticationToken,
    /// A request body over the pool's limit: 413, as AWS's JSON services answer one (Cognito's own
    /// limit and answer are not documented).
    RequestEntityTooLarge,
    /// The caller's IAM identity may not call the operation (injected with `faults.access_denied`).
    AccessDenied,
}

impl ErrorKind {
    /// The `__type` Cognito puts in the body and the `x-amzn-ErrorType` header.
    pub fn type_name(self) -> &'static str {
        match self {
            ErrorKind::NotAuthorized => "NotAuthorizedException",
            ErrorKind::UserNotFound => "UserNotFoundException",
            ErrorKind::UsernameExists => "UsernameExistsException",
            ErrorKind::TooManyRequests => "TooManyRequestsException",
            ErrorKind::UserLambdaValidation => "UserLambdaValidationException",
            ErrorKind::InvalidLambdaResponse => "InvalidLambdaResponseException",
            ErrorKind::UnexpectedLambda => "UnexpectedLambdaException",
            ErrorKind::InvalidParameter => "InvalidParameterException",
            ErrorKind::ResourceNotFound => "ResourceNotFoundException",
            ErrorKind::CodeMismatch => "CodeMismatchException",
            ErrorKind::InternalError => "InternalErrorException",
            ErrorKind::UnknownOperation => "UnknownOperationException",
            ErrorKind::Serialization => "SerializationException",
            ErrorKind::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            ErrorKind::RequestEntityTooLarge => "RequestEntityTooLargeException",
            ErrorKind::AccessDenied => "AccessDeniedException",
        }
    }

    /// HTTP status: 500 only for an internal error, 413 for a body over the limit, 400 for everything else.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InternalError => 500,
            ErrorKind::RequestEntityTooLarge => 413,
            _ => 400,
        }
    }
}

/// An error as a Cognito endpoint reports it: a type and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CognitoError {
    pub kind: ErrorKind,
    pub message: String,
}

impl CognitoError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    /// The Define trigger failed the authentication (too many wrong answers, unknown user).
    pub fn incorrect_username_or_password() -> Self {
        Self::new(ErrorKind::NotAuthorized, "Incorrect username or password.")
    }

    /// An unknown, consumed or replayed Session.
    pub fn invalid_session() -> Self {
        Self::new(ErrorKind::NotAuthorized, "Invalid session for the user.")
    }

    /// A Session older than the client's AuthSessionValidity.
    pub fn expired_session() -> Self {
        Self::new(ErrorKind::NotAuthorized, "Invalid session for the user, session is expired.")
    }

    /// A wrong one-time code (EMAIL_OTP, SMS_OTP, MFA codes): the session stays usable.
    pub fn code_mismatch() -> Self {
        Self::new(ErrorKind::CodeMismatch, "Invalid code or auth state for the user.")
    }

    /// Too many wrong codes (the message apps see after five wrong MFA codes).
    pub fn user_temporarily_locked() -> Self {
        Self::new(
            ErrorKind::NotAuthorized,
            "Too many invalid credentials attempts. User temporarily locked. Please try again after few seconds.",
        )
    }

    /// The password lockout's message.
    pub fn password_attempts_exceeded() -> Self {
        Self::new(ErrorKind::NotAuthorized, "Password attempts exceeded")
    }

    pub fn user_not_found() -> Self {
        Self::new(ErrorKind::UserNotFound, "User does not exist.")
    }

    pub fn rate_exceeded() -> Self {
        Self::new(ErrorKind::TooManyRequests, "Rate exceeded")
    }

    pub fn missing_parameter(name: &str) -> Self {
        Self::new(ErrorKind::InvalidParameter, format!("Missing required parameter {name}"))
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }

    pub fn client_not_found(client_id: &str) -> Self {
        Self::new(ErrorKind::ResourceNotFound, format!("User pool client {client_id} does not exist."))
    }

    /// What AWS answers a caller whose policy lacks `action` (e.g. `cognito-idp:DescribeUserPool`).
    pub fn access_denied(action: &str, resource: &str) -> Self {
        Self::new(
            ErrorKind::AccessDenied,
            format!(
                "User: arn:aws:iam::000000000000:user/otp-harness is not authorized to perform: {action} on \
                 resource: {resource} because no identity-based policy allows the {action} action"
            ),
        )
    }

    pub fn pool_not_found(user_pool_id: &str) -> Self {
        Self::new(ErrorKind::ResourceNotFound, format!("User pool {user_pool_id} does not exist."))
    }
}

impl fmt::Display for CognitoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.type_name(), self.message)
    }
}

impl std::error::Error for CognitoError {}
