//! The router's chunked request-body decoder on any bytes, whole and split in two at a
//! place the first byte picks: TCP may cut a body anywhere, and the result must not
//! depend on where.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liftoff_router::fuzzing::{ChunkedEnd, chunked_body};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, wire)) = data.split_first() else {
        return;
    };
    let whole = chunked_body(&[wire]);
    assert!(whole.data.len() <= wire.len());
    let (a, b) = wire.split_at(usize::from(cut) * wire.len() / 255);
    let split = chunked_body(&[a, b]);
    match (&whole.end, &split.end) {
        (ChunkedEnd::End { rest }, ChunkedEnd::End { rest: rest_split }) => {
            assert_eq!(rest, rest_split);
            assert_eq!(whole.data, split.data);
        }
        (ChunkedEnd::Incomplete, ChunkedEnd::Incomplete) => assert_eq!(whole.data, split.data),
        (ChunkedEnd::End { .. }, ChunkedEnd::Incomplete)
        | (ChunkedEnd::Incomplete, ChunkedEnd::End { .. }) => {
            panic!("the same bytes ended the body once and not the other time: {whole:?} {split:?}")
        }
        (ChunkedEnd::Malformed(_), ChunkedEnd::Malformed(_)) => {}
        // Where a read ends never decides between malformed and not (a chunk line over
        // 4 KiB was, once: wire.rs `take_line`).
        _ => panic!("malformed once and not the other time: {whole:?} {split:?}"),
    }
});
