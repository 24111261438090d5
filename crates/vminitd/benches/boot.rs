//! Boot benchmark (not a timed test): QEMU spawn to the agent's first
//! answered Ping, against a bare boot of the same kernel and initfs whose
//! PID 1 powers off at once (`vminitd_poweroff=1`), measured in the same run;
//! then the Ping round-trip median. Also printed: each pair's difference
//! corrected for its two kernels' boot time to PID 1 (guest clock), which
//! varies far more from boot to boot than the agent's share does, and the
//! agent's boot milestones (`vminitd_timeline=1`, see `vminitd::timeline`).
//! Run: `cargo bench -p vminitd --bench boot` (BENCH_RUNS=n pairs,
//! BENCH_RAW=file appends each pair's figures, for pooling runs).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::vm::launch;

/// Boots of each kind (BENCH_RUNS overrides): TCG timings vary by 10-20%
/// from boot to boot (±100 ms), so the medians need a good few.
fn runs() -> usize {
    std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9)
}
const PINGS: usize = 500;

fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut bare = Vec::new();
    let mut ready = Vec::new();
    let mut rtt = Vec::new();
    let mut bare_up = Vec::new();
    let (mut announced, mut pid1_up) = (Vec::new(), Vec::new());
    let mut timelines = Vec::new();
    let runs = runs();
    for i in 0..runs {
        // The order alternates, so neither kind always follows the other.
        if i % 2 == 0 {
            let (b, up) = bare_boot();
            bare.push(b);
            bare_up.push(up);
        }
        let mut vm = launch("vminitd_timeline=1", None);
        let conn = vm.announced(Duration::from_secs(60)).await;
        announced.push(vm.spawned.elapsed());
        let client = vm.connect_announced(conn, Duration::from_secs(60)).await;
        ready.push(vm.spawned.elapsed());
        for _ in 0..PINGS {
            let t = Instant::now();
            client.ping().await.expect("ping");
            rtt.push(t.elapsed());
        }
        let console = std::fs::read_to_string(&vm.console).unwrap_or_default();
        // Empty for an agent that printed none, to keep pairs aligned.
        let timeline = vminitd::timeline::parse(&console).unwrap_or_default();
        let pid1 = vminitd::timeline::find(&timeline, "pid1").unwrap_or(0.0);
        pid1_up.push(Duration::from_secs_f64(pid1));
        timelines.push(timeline);
        client.shutdown().await.expect("shutdown");
        vm.wait_exit(Duration::from_secs(30));
        drop(vm);
        if i % 2 == 1 {
            let (b, up) = bare_boot();
            bare.push(b);
            bare_up.push(up);
        }
    }
    // The kernel's own boot to PID 1 varies by ~90 ms (s.d.) from boot to
    // boot under TCG here, which swamps the agent's share in the plain
    // difference: each pair is also corrected by its two kernels' PID 1
    // start times on the guest clock.
    let plain: Vec<f64> = (0..runs).map(|i| ms(ready[i]) - ms(bare[i])).collect();
    let corrected: Vec<f64> = (0..runs)
        .map(|i| plain[i] - (ms(pid1_up[i]) - ms(bare_up[i])))
        .collect();
    let first_ping: Vec<Duration> = ready
        .iter()
        .zip(&announced)
        .map(|(r, a)| r.saturating_sub(*a))
        .collect();
    if let Ok(path) = std::env::var("BENCH_RAW") {
        write_raw(&path, &plain, &corrected, &timelines);
    }
    let (bare, ready, rtt) = (median(bare), median(ready), median(rtt));
    // When the agent listens, and the rest of its boot: the milestones.
    println!(
        "guest uptime when the bare init powers off: {:.0} ms; when the agent's PID 1 started: \
         {:.0} ms",
        ms(median(bare_up)),
        ms(median(pid1_up))
    );
    print_timeline(&timelines);
    println!(
        "host: agent announced {:.0} ms after spawn; connect and first Ping {:.0} ms more",
        ms(median(announced)),
        ms(median(first_ping))
    );
    println!(
        "bare boot to power-off (median of {runs}): {:.0} ms",
        ms(bare)
    );
    println!(
        "boot to agent ready    (median of {runs}): {:.0} ms",
        ms(ready)
    );
    println!(
        "agent ready - bare boot: {:+.0} ms (ratio {:.2}; target <= +30 ms); mean of the pairs {:+.0} ms",
        ms(ready) - ms(bare),
        ms(ready) / ms(bare),
        mean(&plain)
    );
    println!(
        "  each pair corrected for its kernels' boot to PID 1: median {:+.0} ms, mean {:+.0} ms",
        median(corrected.clone()),
        mean(&corrected)
    );
    println!(
        "Ping round trip median ({} pings): {:.3} ms (target <= 1 ms)",
        runs * PINGS,
        ms(rtt)
    );
}

/// The agent's milestones (`vminitd_timeline=1`), each the median over the
/// boots of its guest time after PID 1 started.
fn print_timeline(timelines: &[Vec<(String, f64)>]) {
    let Some(first) = timelines.iter().find(|t| !t.is_empty()) else {
        println!("agent timeline: none printed (an agent without milestones?)");
        return;
    };
    let boots = timelines.iter().filter(|t| !t.is_empty()).count();
    let mut line = format!("agent milestones after PID 1 (median of {boots}):");
    for (name, _) in first {
        let after: Vec<f64> = timelines
            .iter()
            .filter_map(|t| {
                let at = |n: &str| vminitd::timeline::find(t, n);
                Some((at(name)? - at("pid1")?) * 1000.0)
            })
            .collect();
        if !after.is_empty() {
            line.push_str(&format!(" {name} {:.1}", median(after)));
        }
    }
    println!("{line} ms");
}

/// With BENCH_RAW=path, each pair's figures are appended to `path` as
/// `plain corrected milestone=ms-after-pid1...` lines, for pooling runs.
fn write_raw(path: &str, plain: &[f64], corrected: &[f64], timelines: &[Vec<(String, f64)>]) {
    use std::io::Write;
    let mut out = String::new();
    for (i, (p, c)) in plain.iter().zip(corrected).enumerate() {
        out.push_str(&format!("{p:.1} {c:.1}"));
        if let Some(t) = timelines.get(i) {
            let pid1 = vminitd::timeline::find(t, "pid1").unwrap_or(0.0);
            for (name, at) in t {
                out.push_str(&format!(" {name}={:.2}", (at - pid1) * 1000.0));
            }
        }
        out.push('\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("BENCH_RAW file");
    f.write_all(out.as_bytes()).expect("BENCH_RAW write");
}

/// One boot whose PID 1 powers off at once: QEMU spawn to exit, and the
/// guest uptime when PID 1 started.
fn bare_boot() -> (Duration, Duration) {
    let mut vm = launch("vminitd_poweroff=1", None);
    let took = vm.wait_exit(Duration::from_secs(60));
    (took, console_uptime(&vm.console, "powering off"))
}

/// The guest uptime the agent printed on its console line containing `what`.
fn console_uptime(console: &std::path::Path, what: &str) -> Duration {
    let log = std::fs::read_to_string(console).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains(what))
        .find_map(|l| {
            let s = l.split("uptime ").nth(1)?.split(' ').next()?;
            s.parse::<f64>().ok().map(Duration::from_secs_f64)
        })
        .unwrap_or_default()
}
