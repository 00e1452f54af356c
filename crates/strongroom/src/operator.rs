//! `strongroom operator …`: work on a server's storage directly.
//!
//! Everything is copied as stored — still encrypted by the barrier — so neither command
//! needs the unseal key, and a snapshot is as safe at rest as the database itself. Both
//! refuse a target that is not empty unless told `--force`. Run them against a stopped
//! server: the copy is made page by page, not in one read transaction. A SQLite file that
//! a running server holds is refused ("in use by another process"); PostgreSQL has no
//! such lock, so there the server must at least take no writes meanwhile.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use aws_lc_rs::digest::{Context as Digest, SHA256};
use clap::Subcommand;
use strongroom_storage::{Op, Storage};

const PAGE: usize = 1000;
const MAGIC: &[u8; 8] = b"SRSNAP01";
const END: u32 = u32::MAX;

#[derive(Subcommand)]
pub enum OperatorCmd {
    /// Copy all data from one server config's storage to another's (e.g. SQLite to
    /// PostgreSQL), then verify counts and checksums.
    Migrate {
        /// Config of the source (Strongroom TOML or OpenBao HCL/JSON).
        #[arg(long)]
        from: PathBuf,
        /// Config of the target.
        #[arg(long)]
        to: PathBuf,
        /// Copy even if the target already holds data (entries with the same key are overwritten).
        #[arg(long)]
        force: bool,
    },
    /// Save or restore a snapshot of a server's storage.
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
}

#[derive(Subcommand)]
pub enum SnapshotCmd {
    /// Write every entry (still encrypted) to FILE.
    Save {
        file: PathBuf,
        #[arg(long)]
        config: PathBuf,
    },
    /// Load FILE into the storage named by the config.
    Restore {
        file: PathBuf,
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        force: bool,
    },
}

async fn open(config: &std::path::Path) -> Result<Arc<dyn Storage>> {
    let cfg = strongroom::config::load(config)?;
    crate::open_storage(&cfg.storage).await
}

fn bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} entries ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(what.to_owned());
    pb
}

fn hash_entry(d: &mut Digest, k: &str, v: &[u8]) {
    d.update(&(k.len() as u32).to_be_bytes());
    d.update(k.as_bytes());
    d.update(&(v.len() as u32).to_be_bytes());
    d.update(v);
}

/// Every entry, page by page, in key order.
async fn for_each(
    s: &dyn Storage,
    mut f: impl FnMut(Vec<(String, Vec<u8>)>) -> Result<()>,
) -> Result<()> {
    let mut after: Option<String> = None;
    loop {
        let page = s.scan("", after.as_deref(), PAGE).await?;
        if page.is_empty() {
            return Ok(());
        }
        after = page.last().map(|(k, _)| k.clone());
        f(page)?;
    }
}

/// (entries, SHA-256 over all of them in key order).
pub async fn checksum(s: &dyn Storage) -> Result<(u64, String)> {
    let mut d = Digest::new(&SHA256);
    let mut n = 0u64;
    for_each(s, |page| {
        for (k, v) in &page {
            hash_entry(&mut d, k, v);
            n += 1;
        }
        Ok(())
    })
    .await?;
    Ok((n, hex::encode(d.finish().as_ref())))
}

async fn ensure_empty(s: &dyn Storage, what: &str, force: bool) -> Result<()> {
    if !force && !s.scan("", None, 1).await?.is_empty() {
        bail!("{what} is not empty: refusing to overwrite it (pass --force to copy anyway)");
    }
    Ok(())
}

async fn write_page(s: &dyn Storage, page: Vec<(String, Vec<u8>)>) -> Result<()> {
    s.transact(page.into_iter().map(|(k, v)| Op::Put(k, v)).collect())
        .await?;
    Ok(())
}

pub async fn run(cmd: OperatorCmd) -> Result<()> {
    match cmd {
        OperatorCmd::Migrate { from, to, force } => {
            let src = open(&from).await.context("opening the source")?;
            let dst = open(&to).await.context("opening the target")?;
            ensure_empty(dst.as_ref(), "the target storage", force).await?;
            let (count, sum) = checksum(src.as_ref()).await?;
            let pb = bar(count, "copying");
            let mut pages = Vec::new();
            for_each(src.as_ref(), |page| {
                pages.push(page);
                Ok(())
            })
            .await?;
            for page in pages {
                let n = page.len() as u64;
                write_page(dst.as_ref(), page).await?;
                pb.inc(n);
            }
            pb.finish_with_message("copied");
            let (dcount, dsum) = checksum(dst.as_ref()).await?;
            if (dcount, &dsum) != (count, &sum) && !force {
                bail!("verification failed: source has {count} entries (sha256 {sum}), target {dcount} (sha256 {dsum})");
            }
            println!(
                "Migrated {count} entries ({}); verified: counts and SHA-256 {sum} match.",
                src.kind()
            );
            src.close().await;
            dst.close().await;
            Ok(())
        }
        OperatorCmd::Snapshot(SnapshotCmd::Save { file, config }) => {
            let src = open(&config).await?;
            let (count, _) = checksum(src.as_ref()).await?;
            let tmp = file.with_extension("partial");
            let mut out = std::io::BufWriter::new(
                std::fs::File::create(&tmp)
                    .with_context(|| format!("creating {}", tmp.display()))?,
            );
            out.write_all(MAGIC)?;
            let mut d = Digest::new(&SHA256);
            let mut n = 0u64;
            let pb = bar(count, "saving");
            for_each(src.as_ref(), |page| {
                for (k, v) in &page {
                    out.write_all(&(k.len() as u32).to_be_bytes())?;
                    out.write_all(k.as_bytes())?;
                    out.write_all(&(v.len() as u32).to_be_bytes())?;
                    out.write_all(v)?;
                    hash_entry(&mut d, k, v);
                    n += 1;
                }
                pb.inc(page.len() as u64);
                Ok(())
            })
            .await?;
            out.write_all(&END.to_be_bytes())?;
            out.write_all(&n.to_be_bytes())?;
            out.write_all(d.finish().as_ref())?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, &file)?;
            pb.finish_with_message("saved");
            println!(
                "Saved {n} entries to {} (entries stay encrypted by the barrier).",
                file.display()
            );
            src.close().await;
            Ok(())
        }
        OperatorCmd::Snapshot(SnapshotCmd::Restore {
            file,
            config,
            force,
        }) => {
            let mut bytes = Vec::new();
            std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?
                .read_to_end(&mut bytes)?;
            let entries = parse_snapshot(&bytes)
                .with_context(|| format!("{} is not a valid snapshot", file.display()))?;
            let dst = open(&config).await?;
            ensure_empty(dst.as_ref(), "the target storage", force).await?;
            let pb = bar(entries.len() as u64, "restoring");
            for chunk in entries.chunks(PAGE) {
                write_page(dst.as_ref(), chunk.to_vec()).await?;
                pb.inc(chunk.len() as u64);
            }
            pb.finish_with_message("restored");
            let (n, _) = checksum(dst.as_ref()).await?;
            println!(
                "Restored {} entries into {} storage ({n} entries now).",
                entries.len(),
                dst.kind()
            );
            dst.close().await;
            Ok(())
        }
    }
}

/// Parse and verify a snapshot: every entry, then the count and checksum must match.
pub fn parse_snapshot(b: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    if b.len() < MAGIC.len() || &b[..MAGIC.len()] != MAGIC {
        bail!("missing snapshot header");
    }
    let mut p = MAGIC.len();
    let mut take = |n: usize| -> Result<&[u8]> {
        if b.len() < p + n {
            bail!("truncated snapshot");
        }
        let s = &b[p..p + n];
        p += n;
        Ok(s)
    };
    let mut out = Vec::new();
    let mut d = Digest::new(&SHA256);
    loop {
        let klen = u32::from_be_bytes(take(4)?.try_into()?);
        if klen == END {
            break;
        }
        let k = String::from_utf8(take(klen as usize)?.to_vec())?;
        let vlen = u32::from_be_bytes(take(4)?.try_into()?) as usize;
        let v = take(vlen)?.to_vec();
        hash_entry(&mut d, &k, &v);
        out.push((k, v));
    }
    let n = u64::from_be_bytes(take(8)?.try_into()?);
    let sum = take(32)?.to_vec();
    if n != out.len() as u64 || sum != d.finish().as_ref() {
        bail!("checksum mismatch: the snapshot is damaged");
    }
    Ok(out)
}
