//! The router's HTTP/1 request-head parser (`h1::parse`, through
//! `liftoff_router::fuzzing::request_head`) on arbitrary bytes: it never panics; a
//! complete head's length lies within the bytes; a head refused or complete stays so
//! when more bytes follow it (what comes after a head is the body or the next request,
//! never part of this head).
#![no_main]

use libfuzzer_sys::fuzz_target;
use liftoff_router::fuzzing::{HeadVerdict, request_head};

fuzz_target!(|data: &[u8]| {
    let verdict = request_head(data);
    if let HeadVerdict::Complete { len } = verdict {
        assert!(len > 0 && len <= data.len(), "{len} of {}", data.len());
    }
    let mut longer = data.to_vec();
    longer.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    match (&verdict, request_head(&longer)) {
        (HeadVerdict::Complete { len }, HeadVerdict::Complete { len: again }) => {
            assert_eq!(*len, again)
        }
        (HeadVerdict::Complete { .. }, other) => panic!("complete, then {other:?}"),
        (HeadVerdict::Refused(a), HeadVerdict::Refused(b)) => assert_eq!(*a, b),
        (HeadVerdict::Refused(a), other) => panic!("refused with {a}, then {other:?}"),
        (HeadVerdict::Incomplete, _) => {}
    }
});
