//! The cold-start baseline: a hello-world `lambda_http` function with the same runtime and profile.

use lambda_http::{Body, Error, Request, Response, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    run(service_fn(|_req: Request| async { Ok::<_, Error>(Response::new(Body::from("hello"))) })).await
}
