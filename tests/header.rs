//! The committed C header must be exactly what cbindgen generates from the current sources.

#[test]
fn committed_header_is_up_to_date() {
    let generated = std::fs::read_to_string(env!("UNET_GENERATED_HEADER")).unwrap();
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/unet.h")).unwrap();
    assert!(
        generated == committed,
        "include/unet.h is stale: regenerate it with `make header` (UNET_WRITE_HEADER=1 cargo build) and commit it"
    );
}
