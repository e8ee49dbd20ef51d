//! How many heap bytes one cached object costs the operator: decodes many copies of a real
//! OMJob and of its two pods the way the watches do, keeps them in kube-runtime stores as the
//! controller does, and prints the bytes that stay allocated per object.
//!
//! `cargo run --release -p omjob-operator --example cache_footprint [-- COUNT]`: jemalloc's
//! own count of live bytes (size classes included), so it needs the default `jemalloc` feature.
//!
//! The objects come from `examples/fixtures/finished-run.json`: an OMJob of OpenMetadata's
//! shape and the main and exit pods a run of it left on the testbed, as the API server served
//! them (managed fields included).

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{reflector, watcher};
use omjob_api::OMJob;
use omjob_operator::{
    decode::Lenient,
    omjob::{self, cached_pod::CachedPod},
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tikv_jemalloc_ctl::{epoch, stats};

// The operator's allocator, whose own count of live bytes (size classes included) is read.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Bytes held by live allocations now.
fn live() -> anyhow::Result<usize> {
    epoch::advance().map_err(|e| anyhow::anyhow!("advancing jemalloc's epoch: {e}"))?;
    stats::allocated::read().map_err(|e| anyhow::anyhow!("reading stats.allocated: {e}"))
}

const FIXTURE: &str = include_str!("fixtures/finished-run.json");

/// `count` copies of `object`, each with a name and uid of its own, as the bytes a watch reads.
fn copies(object: &Value, count: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    (0..count)
        .map(|i| {
            let mut o = object.clone();
            let meta = &mut o["metadata"];
            let name = format!("{}-{i:05}", meta["name"].as_str().unwrap_or("object"));
            meta["name"] = Value::String(name);
            meta["uid"] = Value::String(format!("00000000-0000-4000-8000-{i:012}"));
            Ok(serde_json::to_vec(&o)?)
        })
        .collect()
}

/// Heap bytes per object kept in a store after decoding `bytes` as `K` and applying `modify`.
fn per_object<K>(bytes: &[Vec<u8>], modify: impl Fn(&mut K)) -> anyhow::Result<usize>
where
    K: kube::Resource<DynamicType = ()> + DeserializeOwned + Clone + 'static,
{
    let before = live()?;
    let (reader, mut writer) = reflector::store::<K>();
    for b in bytes {
        let mut obj: K = serde_json::from_slice(b).context("decoding the fixture")?;
        modify(&mut obj);
        writer.apply_watcher_event(&watcher::Event::Apply(obj));
    }
    let after = live()?;
    // Every copy has a key of its own; a store holding fewer would measure too little.
    anyhow::ensure!(
        reader.len() == bytes.len(),
        "the store holds {} of {} copies",
        reader.len(),
        bytes.len()
    );
    Ok(after.saturating_sub(before) / bytes.len().max(1))
}

fn main() -> anyhow::Result<()> {
    let count: usize = match std::env::args().nth(1) {
        Some(a) => a
            .parse()
            .with_context(|| format!("COUNT is not a number: {a:?}"))?,
        None => 10_000,
    };
    let fixture: Value = serde_json::from_str(FIXTURE).context("the fixture is not JSON")?;
    let mut rows = Vec::new();
    for key in ["main", "exit"] {
        let bytes = copies(&fixture[key], count)?;
        let full = per_object::<Pod>(&bytes, |_| {})?;
        let cached = per_object::<CachedPod>(&bytes, CachedPod::slim)?;
        rows.push((format!("{key} pod"), full, cached));
    }
    let bytes = copies(&fixture["omjob"], count)?;
    let full = per_object::<Lenient<OMJob>>(&bytes, |_| {})?;
    let cached = per_object::<Lenient<OMJob>>(&bytes, omjob::strip_omjob_for_cache)?;
    rows.push(("finished OMJob".to_owned(), full, cached));

    println!("{count} copies each; heap bytes per object kept in a store");
    println!("{:<16} {:>10} {:>10}", "object", "as decoded", "as cached");
    for (name, full, cached) in &rows {
        println!("{name:<16} {full:>10} {cached:>10}");
    }
    let run: usize = rows.iter().map(|r| r.2).sum();
    #[allow(clippy::cast_precision_loss)]
    let mib = (run * count) as f64 / 1_048_576.0;
    println!("one finished run as cached: {run} bytes; {count} runs: {mib:.1} MiB");
    Ok(())
}
