//! The ACL contract against the in-memory store of the local server.

#[tokio::test]
async fn memory_store_honours_the_acl_contract() {
    chatgate_tests::acl_contract::run_all(&chatgate::acl::MemoryStore::new()).await;
}
