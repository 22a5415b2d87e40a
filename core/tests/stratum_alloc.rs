//! The per-share path of the codec does not allocate: parsing `mining.submit` and writing the
//! submit reply, errors, `set_difficulty` and `notify` into caller buffers.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use warppool_core::stratum::{
    ErrorCode, LineFramer, Notify, Request, parse_line, write_error, write_notify,
    write_result_bool, write_set_difficulty,
};
use warppool_core::{Difficulty, JobId};

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn submit_path_does_not_allocate() {
    let lines: [&[u8]; 4] = [
        concat!(
            r#"{"id":4,"method":"mining.submit","#,
            r#""params":["bc1q.w","1a","00000001","6650f8a1","da54e7"]}"#
        )
        .as_bytes(),
        concat!(
            r#"{"params": ["a.b", "5b", "01000000", "6650f8b3", "3c2d1e0f", "1fffe000"],"#,
            r#" "id": 12, "method": "mining.submit"}"#
        )
        .as_bytes(),
        concat!(
            r#"{"id":"s-1","method":"mining.submit","#,
            r#""params":["w","ahoj","00000000","5d10bc0a","0443C37B","00000000"]}"#
        )
        .as_bytes(),
        br#"{"id":9,"method":"mining.submit","params":["a","b","c","d"]}"#,
    ];
    let stream: Vec<u8> = lines
        .iter()
        .flat_map(|l| l.iter().chain(b"\r\n"))
        .copied()
        .collect();
    let mut frame_buf = [0u8; 1024];
    let mut out = [0u8; 2048];
    let branch = ["00".repeat(32)];
    let branch: Vec<&str> = branch.iter().map(String::as_str).collect();
    let coinb1 = "01".repeat(60);
    let notify = Notify {
        job_id: JobId::new(0x1a2b),
        prevhash: "ab",
        coinb1: &coinb1,
        coinb2: "ffffffff",
        merkle_branch: &branch,
        version: "20000000",
        nbits: "1d00ffff",
        ntime: "6650f8a1",
        clean_jobs: false,
    };
    let diffs = [
        Difficulty::from_whole(4096).unwrap(),
        Difficulty::from_f64_lossy(0.25).unwrap(),
    ];

    let before = allocations();
    let mut submits = 0;
    let mut framer = LineFramer::new(&mut frame_buf);
    let mut rest = &stream[..];
    while !rest.is_empty() {
        let n = framer.feed(rest);
        rest = &rest[n..];
        while let Some(Ok(line)) = framer.next_line() {
            match parse_line(line) {
                Ok(msg) => {
                    assert!(matches!(msg.request, Request::Submit(_)));
                    submits += 1;
                    write_result_bool(&mut out, &msg.id, true).unwrap();
                }
                Err(e) => {
                    write_error(&mut out, &e.reply_id(), ErrorCode::Other, "bad submit").unwrap();
                }
            }
        }
    }
    for d in diffs {
        write_set_difficulty(&mut out, d, true).unwrap();
        write_set_difficulty(&mut out, d, false).unwrap();
    }
    write_notify(&mut out, &notify).unwrap();
    let after = allocations();
    assert_eq!(submits, 3);
    assert_eq!(after - before, 0, "the submit path allocated");
    // The counter works.
    let v = std::hint::black_box(vec![1u8; 16]);
    assert!(allocations() > after);
    drop(v);
}
