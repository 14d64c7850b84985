//! `hello-http`: a `wasi:http/proxy` component that answers every request with
//! `hello from pack: <METHOD> <PATH>` and status 200.
//!
//! ```text
//! $ pack build && pack run target/pack/hello-http --key pack.pub --listen 127.0.0.1:8080
//! $ curl http://127.0.0.1:8080/hi
//! hello from pack: GET /hi
//! ```

wit_bindgen::generate!({
    path: "wit",
    world: "hello-http",
    generate_all,
});

use exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct HelloHttp;

impl Guest for HelloHttp {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let text = format!(
            "hello from pack: {} {}\n",
            method_name(&request.method()),
            request.path_with_query().unwrap_or_else(|| "/".to_string())
        );
        let headers = Fields::from_list(&[
            ("content-type".to_string(), b"text/plain; charset=utf-8".to_vec()),
            ("content-length".to_string(), text.len().to_string().into_bytes()),
        ])
        .expect("valid headers");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("the body is taken once");
        ResponseOutparam::set(response_out, Ok(response));

        let stream = body.write().expect("the stream is taken once");
        // One short write: the greeting is far below the 4096-byte limit of a blocking
        // write.
        stream
            .blocking_write_and_flush(text.as_bytes())
            .expect("the client is connected");
        drop(stream);
        OutgoingBody::finish(body, None).expect("the body is complete");
    }
}

fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(other) => other,
    }
}

export!(HelloHttp);
