//! The condition parser (`error_rate > 5% over 30s for 1m`) on any text. The first
//! byte says whether `for` is allowed (a trigger) or not (a gate).
#![no_main]

use libfuzzer_sys::fuzz_target;
use liftoff_plan::condition::parse_condition;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let allow_for = first & 1 == 1;
    match parse_condition(text, allow_for) {
        Ok(c) => {
            // Status and reports show `text`: it must read back as the same condition.
            let again = parse_condition(&c.text, allow_for).expect("a condition's own text");
            assert_eq!(again, c);
            let _ = c.threshold_text();
        }
        // The plan decoder slices the text at the offset to find the column.
        Err(e) => assert!(text.is_char_boundary(e.offset), "offset {e:?} in {text:?}"),
    }
});
