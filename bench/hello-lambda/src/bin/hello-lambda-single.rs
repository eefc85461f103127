//! The same hello world on tokio's single-threaded runtime, as chatgate's functions run: the
//! like-for-like baseline, so the cold-start table separates the runtime from the binary.

use lambda_http::{Body, Error, Request, Response, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    run(service_fn(|_req: Request| async { Ok::<_, Error>(Response::new(Body::from("hello"))) })).await
}
