//! rvsd's core: a slow change holds up nobody else, and a crash during a save never leaves a
//! truncated state file.

mod common;

use std::{
    io::Write,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{Lab, RVSADM, dest_rows, stderr};
use rvs_testbed::poll_until;

const PORT: u16 = 80;

/// Real servers on the director's LAN that never answer address resolution: each add waits for
/// its neighbour (1.5 s), so a restore of a thousand holds its client for many minutes.
fn silent(i: usize) -> String {
    format!("198.18.{}.{}", 20 + i / 250, i % 250 + 1)
}

/// `rvsadm -R` fed `lines`, left running.
fn start_restore(lab: &Lab, lines: &str) -> Child {
    let mut restore = Command::new(RVSADM)
        .arg("-R")
        .env("RVS_SOCKET", lab.socket())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting rvsadm -R");
    restore
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    restore
}

#[test]
fn listings_answer_while_a_slow_restore_holds_the_socket() {
    let lab = Lab::with(2, PORT, 16, &[]);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    lab.ok(&[
        "-a",
        "-t",
        &vip,
        "-r",
        &format!("{}:{PORT}", lab.rs_ip(0)),
        "-g",
    ]);
    let adds: String = (0..1000)
        .map(|i| format!("-a -t {vip} -r {}:{PORT} -g\n", silent(i)))
        .collect();
    let mut restore = start_restore(&lab, &adds);
    // The restore is under way: its first silent server is in the table, waiting.
    poll_until(
        Duration::from_secs(10),
        "the restore's first server",
        || Ok((dest_rows(&lab.ok(&["-L", "-n"])).len() >= 2).then_some(())),
    )
    .unwrap();

    let mut times = Vec::new();
    for _ in 0..10 {
        for args in [&["-L", "-n"][..], &["-L", "-c", "-n"][..]] {
            let start = Instant::now();
            let out = lab.rvsadm(args);
            times.push(start.elapsed());
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let still_busy = restore.try_wait().unwrap().is_none();
    let _ = restore.kill();
    let _ = restore.wait();
    assert!(
        still_busy,
        "the restore finished: the socket was not held busy"
    );
    times.sort();
    let median = times[times.len() / 2];
    let worst = *times.last().unwrap();
    // Before the director had its own task, a listing waited for the neighbour the restore
    // was waiting for: up to 1.5 s, 0.75 s on average.
    assert!(
        median < Duration::from_millis(100),
        "listings took {times:?} while the restore waited"
    );
    assert!(
        worst < Duration::from_millis(750),
        "a listing took {worst:?} while the restore waited"
    );
    // The restore went on meanwhile: its second silent server goes in after its own wait.
    poll_until(
        Duration::from_secs(5),
        "the restore's second server",
        || Ok((dest_rows(&lab.ok(&["-L", "-n"])).len() >= 3).then_some(())),
    )
    .unwrap();
}

#[test]
fn kill_9_during_saves_leaves_the_old_or_the_new_state_file() {
    let mut lab = Lab::with(2, PORT, 16, &[]);
    let vip = lab.vip_port(PORT);
    let state = lab.dir.join("state.json");
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    // Servers whose MACs are known: adds do not wait, so saves follow each other quickly.
    let director = lab.cluster.director();
    let neigh: String = (0..300)
        .map(|i| {
            format!(
                "neigh add {} lladdr 02:00:00:00:{:02x}:{:02x} dev {} nud permanent\n",
                silent(i),
                i / 256,
                i % 256,
                director.ifname()
            )
        })
        .collect();
    let batch = lab.dir.join("neigh.batch");
    std::fs::write(&batch, neigh).unwrap();
    director
        .netns()
        .ip(&["-batch", batch.to_str().unwrap()])
        .unwrap();

    for round in 0..3 {
        let adds: String = (round * 100..round * 100 + 100)
            .map(|i| format!("-a -t {vip} -r {}:{PORT} -g -w 0\n", silent(i)))
            .collect();
        let mut restore = start_restore(&lab, &adds);
        // Killed in the middle of the stream of saves.
        let before = dest_rows(&lab.ok(&["-L", "-n"])).len();
        poll_until(Duration::from_secs(20), "the restore going on", || {
            Ok((dest_rows(&lab.ok(&["-L", "-n"])).len() >= before + 20 + round * 10).then_some(()))
        })
        .unwrap();
        let pid = lab.rvsd.as_ref().unwrap().pid();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let _ = restore.wait();
        let mut dead = lab.rvsd.take().unwrap();
        poll_until(Duration::from_secs(5), "rvsd's death", || {
            Ok(dead.try_wait()?.map(|_| ()))
        })
        .unwrap();
        let saved = rvs::daemon::state::load(&state)
            .unwrap_or_else(|e| panic!("round {round}: the state file is broken: {e:#}"))
            .expect("a state file");
        let servers = saved.services[0].dests.len();
        assert!(servers >= before, "round {round}: {servers} < {before}");
        // The next rvsd resumes what was saved.
        lab.start_rvsd();
        assert_eq!(dest_rows(&lab.ok(&["-L", "-n"])).len(), servers);
    }
}
