//! `/ui/login`: with `console.auth.mode: token`, a browser cannot add an `Authorization` header,
//! so a form takes the token once and, when it is the console's, sets it as an HttpOnly,
//! SameSite=Strict cookie ([`COOKIE`]) that [`ConsoleAuth::check`] accepts. Other modes need no
//! login here (`oidc`: the identity-aware proxy signs the user in).

use std::collections::HashMap;

use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::{ConsoleAuth, COOKIE};
use super::html::esc;
use crate::server::AppState;

fn page(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>sluice console: sign in</title></head>\
         <body><h1>sluice console</h1><p>{}</p><form method=\"post\" action=\"/ui/login\">\
         <input type=\"password\" name=\"token\" autocomplete=\"current-password\" placeholder=\"console.auth.token\">\
         <button>sign in</button></form></body></html>",
        esc(message)
    );
    let mut r = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub async fn form(State(state): State<AppState>) -> Response {
    match state.console.as_deref().map(|c| &c.auth) {
        Some(ConsoleAuth::Token(_)) => page(StatusCode::OK, "Sign in with the console's token."),
        Some(_) => {
            page(StatusCode::OK, "No sign-in here: this console is open on loopback, or takes Google identity tokens.")
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let Some(console) = state.console.clone() else { return StatusCode::NOT_FOUND.into_response() };
    let ConsoleAuth::Token(_) = &console.auth else { return StatusCode::NOT_FOUND.into_response() };
    let token = f.get("token").map(String::as_str).unwrap_or_default();
    let mut bearer = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
        bearer.insert(header::AUTHORIZATION, v);
    }
    if console.auth.check(&bearer).await.is_err() {
        return page(StatusCode::UNAUTHORIZED, "That is not the console's token.");
    }
    // Secure when the browser reached sluice over https (Cloud Run, a load balancer).
    let https = headers.get("x-forwarded-proto").is_some_and(|p| p == "https");
    let value: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let cookie = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{}", if https { "; Secure" } else { "" });
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}
