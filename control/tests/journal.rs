//! The block journal on real files: a failed write never glues two entries together (fault
//! injection, and a real `EFBIG` from `RLIMIT_FSIZE` in a child process), replay is one pass
//! over any number of blocks, and compaction keeps the journal small for years.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use warppool_control::journal::{
    BlockStatus, Finder, FoundBlock, Journal, JournalEntry, JournalFile, JournalSync,
};

fn temp_journal(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warppool-jtest-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("blocks.journal")
}

fn block(n: u32, hex_bytes: usize) -> FoundBlock {
    FoundBlock {
        height: 100 + n,
        hash: format!("{n:064x}"),
        block_hex: "ab".repeat(hex_bytes / 2),
        finder: Some(Finder {
            worker: format!("bcrt1qfinder.rig{n}"),
            extranonce1: format!("{n:08x}"),
            user_agent: None,
        }),
    }
}

fn status_entry(b: &FoundBlock, status: BlockStatus) -> JournalEntry {
    JournalEntry {
        height: b.height,
        hash: b.hash.clone(),
        time: 1,
        status,
        block_hex: None,
        detail: Some("node a: 100 confirmations".to_owned()),
        finder: None,
        settled: false,
    }
}

/// Every line of the file is a whole entry.
fn assert_whole_lines(path: &Path) -> Vec<JournalEntry> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "ends with a newline"
    );
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_str::<JournalEntry>(l)
                .unwrap_or_else(|e| panic!("glued or torn line {l:?}: {e}"))
        })
        .collect()
}

/// A real file that accepts `budget` more bytes, then fails a write part-way (as a full disk
/// does); `truncate_fails` also refuses the cut back.
#[derive(Debug)]
struct FailingFile {
    file: std::fs::File,
    budget: usize,
    truncate_fails: bool,
}

impl Write for FailingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.budget == 0 {
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let n = buf.len().min(self.budget);
        self.budget -= n;
        self.file.write(&buf[..n])
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl JournalFile for FailingFile {
    fn size(&self) -> std::io::Result<u64> {
        self.file.metadata().map(|m| m.len())
    }
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        if self.truncate_fails {
            return Err(std::io::Error::from_raw_os_error(libc::EIO));
        }
        self.file.set_len(len)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }
    fn syncer(&self) -> std::io::Result<Arc<dyn JournalSync>> {
        Ok(Arc::new(self.file.try_clone()?))
    }
}

fn failing(path: &Path, budget: usize, truncate_fails: bool) -> Box<dyn JournalFile> {
    let file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    Box::new(FailingFile {
        file,
        budget,
        truncate_fails,
    })
}

#[test]
fn a_failed_append_leaves_no_fragment_to_glue_the_next_entry_onto() {
    for truncate_fails in [false, true] {
        let path = temp_journal(&format!("fault-{truncate_fails}"));
        let first = block(1, 200);
        let second = block(2, 200);
        let mut journal = Journal::open(&path).unwrap();
        journal.append_found(&first).unwrap();
        // The disk fills 40 bytes into the second block's line.
        let mut journal = journal
            .with_file(failing(&path, 40, truncate_fails))
            .unwrap();
        let err = journal.append_found(&second).unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        // Room again: the next entry is a line of its own.
        let mut journal = journal
            .with_file(failing(&path, usize::MAX, false))
            .unwrap();
        journal.append_found(&second).unwrap();
        journal
            .append(&status_entry(&first, BlockStatus::Submitted))
            .unwrap();
        let entries = if truncate_fails {
            // The fragment could not be cut back: it stands on its own line, skipped at replay,
            // and nothing was written onto it.
            let text = std::fs::read_to_string(&path).unwrap();
            let torn: Vec<_> = text
                .lines()
                .filter(|l| serde_json::from_str::<JournalEntry>(l).is_err())
                .collect();
            assert_eq!(torn.len(), 1, "{text}");
            assert_eq!(torn[0].len(), 40, "the fragment alone: {:?}", torn[0]);
            text.lines()
                .filter_map(|l| serde_json::from_str::<JournalEntry>(l).ok())
                .collect()
        } else {
            assert_whole_lines(&path)
        };
        let hashes: Vec<_> = entries.iter().map(|e| e.hash.as_str()).collect();
        assert_eq!(hashes, [&first.hash, &second.hash, &first.hash]);
        let unfinished = Journal::replay(&path).unwrap();
        assert_eq!(unfinished.len(), 2, "both blocks are there, whole");
        assert_eq!(unfinished[1].block, second);
    }
}

/// The child half of the `EFBIG` test: appends under a small `RLIMIT_FSIZE` soft limit.
fn efbig_child(path: &Path) {
    let mut journal = Journal::open(path).unwrap();
    journal.append_found(&block(1, 100)).unwrap();
    let len = std::fs::metadata(path).unwrap().len();
    // SIGXFSZ would kill the process; ignored, the write fails with EFBIG instead.
    // SAFETY: setting a signal disposition to SIG_IGN in a single-purpose child process.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &raw mut limit) };
    let hard = limit.rlim_max;
    let small = libc::rlimit {
        rlim_cur: len + 50,
        rlim_max: hard,
    };
    // SAFETY: as above; lowering only the soft limit, which may be raised back.
    let lowered = unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &raw const small) };
    assert_eq!(lowered, 0);
    let err = journal.append_found(&block(2, 4_000)).unwrap_err();
    println!("EFBIG-ERROR {err}");
    let back = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: as above; the soft limit back to the hard one.
    let raised = unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &raw const back) };
    assert_eq!(raised, 0);
    journal.append_found(&block(3, 100)).unwrap();
}

#[test]
fn a_real_efbig_mid_line_is_cut_back_and_the_next_entry_stands_alone() {
    if let Some(path) = std::env::var_os("WARPPOOL_EFBIG_CHILD") {
        efbig_child(Path::new(&path));
        return;
    }
    let path = temp_journal("efbig");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_real_efbig_mid_line_is_cut_back_and_the_next_entry_stands_alone",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("WARPPOOL_EFBIG_CHILD", &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("EFBIG-ERROR") && stdout.contains("File too large"),
        "{stdout}"
    );
    let entries = assert_whole_lines(&path);
    let heights: Vec<_> = entries.iter().map(|e| e.height).collect();
    assert_eq!(heights, [101, 103], "the failed block left no fragment");
}

#[test]
fn replay_returns_every_unfinished_block_however_many_in_one_pass() {
    // Earlier versions refused the whole journal above 4,096 unfinished blocks.
    let path = temp_journal("many");
    let mut journal = Journal::open(&path).unwrap();
    let n = 10_000;
    for i in 0..n {
        journal.append_found(&block(i, 64)).unwrap();
    }
    for i in (0..n).step_by(2) {
        journal
            .append(&status_entry(&block(i, 64), BlockStatus::Submitted))
            .unwrap();
    }
    drop(journal);
    let unfinished = Journal::replay(&path).unwrap();
    assert_eq!(unfinished.len(), n as usize);
    assert!(unfinished.iter().enumerate().all(|(i, u)| {
        let expected = if i % 2 == 0 {
            BlockStatus::Submitted
        } else {
            BlockStatus::Found
        };
        u.block.height == 100 + i as u32 && u.status == expected
    }));
    let mut reopened = Journal::open(&path).unwrap();
    assert_eq!(reopened.take_unfinished().len(), n as usize);
}

#[test]
fn ten_thousand_finished_blocks_keep_the_journal_under_64_kib() {
    let path = temp_journal("compact");
    let mut journal = Journal::open(&path).unwrap();
    // One block that never finishes (its node never answers) must survive every compaction.
    let stuck = block(999_999, 2_000);
    journal.append_found(&stuck).unwrap();
    journal
        .append(&status_entry(&stuck, BlockStatus::InChain))
        .unwrap();
    let mut largest = 0;
    for i in 0..10_000 {
        let b = block(i, 600);
        journal.append_found(&b).unwrap();
        journal
            .append(&status_entry(&b, BlockStatus::InChain))
            .unwrap();
        journal
            .append(&status_entry(&b, BlockStatus::Mature))
            .unwrap();
        largest = largest.max(std::fs::metadata(&path).unwrap().len());
    }
    assert!(journal.compactions() > 0);
    assert!(largest <= 64 * 1024, "journal grew to {largest} bytes");
    drop(journal);
    let unfinished = Journal::replay(&path).unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].block, stuck);
    assert_eq!(unfinished[0].status, BlockStatus::InChain);
    assert_whole_lines(&path);
}

#[test]
fn a_settled_orphan_is_final_and_an_unsettled_one_is_followed() {
    let path = temp_journal("orphan");
    let mut journal = Journal::open(&path).unwrap();
    let (a, b) = (block(1, 64), block(2, 64));
    for x in [&a, &b] {
        journal.append_found(x).unwrap();
        journal
            .append(&status_entry(x, BlockStatus::Orphaned))
            .unwrap();
    }
    journal
        .append(&JournalEntry {
            settled: true,
            ..status_entry(&a, BlockStatus::Orphaned)
        })
        .unwrap();
    let unfinished = Journal::replay(&path).unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].block, b);
}

#[test]
fn journals_of_earlier_versions_read_with_the_new_statuses() {
    let path = temp_journal("old");
    let lines = [
        r#"{"height":101,"hash":"01","time":1,"status":"found","block_hex":"00"}"#,
        r#"{"height":101,"hash":"01","time":2,"status":"accepted"}"#,
        r#"{"height":102,"hash":"02","time":1,"status":"found","block_hex":"00"}"#,
        r#"{"height":102,"hash":"02","time":2,"status":"confirmed"}"#,
        r#"{"height":103,"hash":"03","time":1,"status":"found","block_hex":"00"}"#,
        r#"{"height":103,"hash":"03","time":2,"status":"pending"}"#,
    ];
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let got: Vec<_> = Journal::replay(&path)
        .unwrap()
        .into_iter()
        .map(|u| (u.block.hash, u.status))
        .collect();
    assert_eq!(
        got,
        [
            ("01".to_owned(), BlockStatus::Submitted),
            ("02".to_owned(), BlockStatus::InChain),
            ("03".to_owned(), BlockStatus::Submitted),
        ]
    );
}
