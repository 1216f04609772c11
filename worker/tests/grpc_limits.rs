//! The Worker service bounds what a client may send: an oversized request is refused with
//! OUT_OF_RANGE before it is decoded, and the same connection goes on serving normal requests.

mod proc;

use bridgepool_proto::limits;
use proc::{client, request};

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_request_is_refused_and_the_connection_goes_on() {
    let worker = proc::spawn(46_000, 40, "w-limits", &[], &[]);
    let mut c = client(&worker).await;
    let huge = request(&"x".repeat(limits::MAX_WORKER_REQUEST + 1), None, None);
    let refused = c
        .create_session(huge)
        .await
        .expect_err("a request over the limit");
    assert_eq!(refused.code(), tonic::Code::OutOfRange, "{refused:?}");
    let created = c
        .create_session(request("normal", None, None))
        .await
        .expect("a normal request after the refusal")
        .into_inner();
    assert!(!created.session_id.is_empty());
}
