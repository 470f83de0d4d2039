//! The monitor over real HTTPS: rvsd with `--web` on a director in namespaces, asked from the
//! client's namespace by a Rust HTTPS client (hyper over tokio-rustls) that trusts exactly the
//! certificate rvsd made. Logins, sessions and their expiry, CSRF, roles, bad input, plain
//! HTTP, API tokens, and `/metrics` checked by promtool and against `rvsadm -L -n --stats`.

mod common;

use std::{collections::BTreeMap, process::Command, time::Duration};

use rvs_testbed::DrCluster;

use common::{
    Lab, dest_rows, service_stats,
    web::{Client, PORT, web_lab as lab, weight_of},
};

#[test]
fn login_sessions_csrf_roles_and_bad_input() {
    let (lab, users) = lab(&["--web-session-idle", "3"]);
    let c = Client::new(&lab);
    let svc = format!("tcp:{}", lab.vip_port(PORT));
    let rs = format!("{}:{PORT}", lab.rs_ip(0));
    let server = format!("/api/v1/services/{svc}/servers/{rs}");

    // Nobody logged in: 401 from the API, the login page from the console.
    let r = c.get("/api/v1/services", &[]);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("log in"));
    let r = c.get("/", &[]);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("id=\"login-form\""), "{}", r.body);
    assert!(!r.body.contains("id=\"services\""));
    let r = c.send("PUT", &server, &[], r#"{"weight":5}"#);
    assert_eq!(r.status, 401);

    // Wrong password, unknown user, malformed login.
    for body in [
        r#"{"username":"alice","password":"wrong"}"#,
        r#"{"username":"mallory","password":"alice's secret"}"#,
    ] {
        let r = c.send("POST", "/api/v1/login", &[], body);
        assert_eq!(r.status, 401, "{body}: {}", r.body);
        assert!(!r.headers.contains_key("set-cookie"));
    }
    assert_eq!(c.send("POST", "/api/v1/login", &[], "{").status, 400);
    // Not JSON (what a cross-site form would send): refused before anything is read.
    let r = c.send(
        "POST",
        "/api/v1/login",
        &[("content-type", "text/plain")],
        r#"{"username":"alice","password":"alice's secret"}"#,
    );
    assert_eq!(r.status, 415, "{}", r.body);

    // The admin: the console, then a weight change visible in rvsadm at once.
    let (cookie, csrf) = c.login("alice", "alice's secret");
    let r = c.get("/", &[("cookie", &cookie)]);
    assert!(r.body.contains("id=\"services\""), "{}", r.body);
    let r = c.get("/api/v1/services", &[("cookie", &cookie)]);
    assert_eq!(r.status, 200);
    let s = &r.json()["services"][0];
    assert_eq!(s["id"], svc.as_str());
    assert_eq!(s["servers_total"], 3);

    // A change without the CSRF token, or with a wrong one: 403, nothing changes.
    let r = c.send("PUT", &server, &[("cookie", &cookie)], r#"{"weight":5}"#);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("CSRF"));
    let r = c.send(
        "PUT",
        &server,
        &[("cookie", &cookie), ("x-csrf-token", "0000")],
        r#"{"weight":5}"#,
    );
    assert_eq!(r.status, 403);
    assert_eq!(weight_of(&lab, &rs), Some(3));

    let auth = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let r = c.send("PUT", &server, &auth, r#"{"weight":5}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["weight"], 5);
    assert_eq!(weight_of(&lab, &rs), Some(5));
    // Drain.
    let r = c.send("PUT", &server, &auth, r#"{"weight":0}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(weight_of(&lab, &rs), Some(0));

    // Bad input: 400 (or 413, 404) with a message; the weight stays 0.
    for (body, status, says) in [
        (r#"{"weight":70000}"#.to_owned(), 400, "out of range"),
        (r#"{"weight":-1}"#.to_owned(), 400, "out of range"),
        (r#"{"weight":"five"}"#.to_owned(), 400, "bad request body"),
        (
            r#"{"weight":5,"color":"red"}"#.to_owned(),
            400,
            "unknown field",
        ),
        ("{weight:5".to_owned(), 400, "bad request body"),
        (
            format!(r#"{{"weight":5,"pad":"{}"}}"#, "x".repeat(20_000)),
            413,
            "",
        ),
    ] {
        let r = c.send("PUT", &server, &auth, &body);
        assert_eq!(
            r.status,
            status,
            "{}: {}",
            &body[..body.len().min(40)],
            r.body
        );
        assert!(r.body.contains(says), "{}", r.body);
    }
    let missing = format!("/api/v1/services/{svc}/servers/198.19.255.1:{PORT}");
    let r = c.send("PUT", &missing, &auth, r#"{"weight":5}"#);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(weight_of(&lab, &rs), Some(0));

    // Take it out and put it back, as the console does.
    let r = c.send("DELETE", &server, &auth, "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(weight_of(&lab, &rs), None);
    let removed = r.json()["removed"].clone();
    let back = serde_json::json!({
        "server": removed["id"], "weight": 2, "forward": removed["forward"],
    });
    let r = c.send(
        "POST",
        &format!("/api/v1/services/{svc}/servers"),
        &auth,
        &back.to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(weight_of(&lab, &rs), Some(2));
    // Adding it twice is refused as rvsadm is, with the same errno.
    let r = c.send(
        "POST",
        &format!("/api/v1/services/{svc}/servers"),
        &auth,
        &back.to_string(),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["errno"], libc::EEXIST);

    // A viewer sees everything and changes nothing.
    let (vcookie, vcsrf) = c.login("bob", "bob's secret");
    let r = c.get(&server, &[("cookie", &vcookie)]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["weight"], 2);
    let r = c.send(
        "PUT",
        &server,
        &[("cookie", &vcookie), ("x-csrf-token", &vcsrf)],
        r#"{"weight":9}"#,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("viewer"));
    assert_eq!(weight_of(&lab, &rs), Some(2));

    // Every change is in the audit log: who, what, from where.
    let log = std::fs::read_to_string(lab.dir.join("web-audit.log")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let client_ip = lab.cluster.client().ip().to_string();
    assert!(lines.iter().any(|l| l["user"] == "alice"
        && l["action"] == "set weight 5"
        && l["result"] == "ok"
        && l["from"] == client_ip.as_str()));
    assert!(
        lines
            .iter()
            .any(|l| l["user"] == "alice" && l["action"] == "remove real server")
    );
    assert!(
        lines
            .iter()
            .any(|l| l["user"] == "bob" && l["result"].as_str().unwrap().starts_with("refused"))
    );

    // Logout ends the session.
    let r = c.send("POST", "/api/v1/logout", &auth, "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        c.get("/api/v1/services", &[("cookie", &cookie)]).status,
        401
    );

    // An idle session expires (--web-session-idle 3); a used one does not.
    let (cookie, _) = c.login("alice", "alice's secret");
    for _ in 0..3 {
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(c.get("/api/v1/session", &[("cookie", &cookie)]).status, 200);
    }
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(c.get("/api/v1/session", &[("cookie", &cookie)]).status, 401);
    let r = c.get("/", &[("cookie", &cookie)]);
    assert!(r.body.contains("id=\"login-form\""));

    // Logins are rate-limited per source: after 5 failures within a minute (those above count
    // while they are less than a minute old) the next attempt waits, even with the right
    // password.
    let mut failures = 0;
    loop {
        let r = c.send(
            "POST",
            "/api/v1/login",
            &[],
            r#"{"username":"alice","password":"guess"}"#,
        );
        if r.status == 429 {
            break;
        }
        assert_eq!(r.status, 401, "{}", r.body);
        failures += 1;
        assert!(
            failures <= 5,
            "still not limited after {failures} more failures"
        );
    }
    let r = c.send(
        "POST",
        "/api/v1/login",
        &[],
        r#"{"username":"alice","password":"alice's secret"}"#,
    );
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));
    let _ = std::fs::remove_file(users);
}

#[test]
fn plain_http_is_refused_and_tokens_can_be_revoked() {
    use std::io::{Read, Write};
    let (lab, users) = lab(&[]);
    let c = Client::new(&lab);

    // Plain HTTP on the HTTPS port: a short refusal, never a page.
    let mut s = c.connect();
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /api/v1/services HTTP/1.1\r\nHost: rvsd\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("HTTPS only"), "{answer}");
    assert!(!answer.contains("services\""), "{answer}");

    // An admin makes a token for a script; it reads, and once revoked it does not.
    let (cookie, csrf) = c.login("alice", "alice's secret");
    let auth = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let r = c.send("POST", "/api/v1/tokens", &auth, r#"{"name":"ci"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let (id, token) = (
        r.json()["id"].as_str().unwrap().to_owned(),
        r.json()["token"].as_str().unwrap().to_owned(),
    );
    let stored = std::fs::read_to_string(lab.dir.join("web-tokens.json")).unwrap();
    assert!(!stored.contains(&token), "tokens are stored hashed");
    let bearer = format!("Bearer {token}");
    let r = c.get("/api/v1/services", &[("authorization", &bearer)]);
    assert_eq!(r.status, 200, "{}", r.body);
    // A viewer token (the default) may not change; a token needs no CSRF token.
    let server = format!(
        "/api/v1/services/tcp:{}/servers/{}:{PORT}",
        lab.vip_port(PORT),
        lab.rs_ip(1)
    );
    let r = c.send(
        "PUT",
        &server,
        &[("authorization", &bearer)],
        r#"{"weight":7}"#,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = c.send(
        "POST",
        "/api/v1/tokens",
        &auth,
        r#"{"name":"deploy","role":"admin"}"#,
    );
    let admin_token = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    let r = c.send(
        "PUT",
        &server,
        &[("authorization", &admin_token)],
        r#"{"weight":7}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        weight_of(&lab, &format!("{}:{PORT}", lab.rs_ip(1))),
        Some(7)
    );
    // The viewer bob may not make tokens.
    let (vcookie, vcsrf) = c.login("bob", "bob's secret");
    let r = c.send(
        "POST",
        "/api/v1/tokens",
        &[("cookie", &vcookie), ("x-csrf-token", &vcsrf)],
        r#"{"name":"mine"}"#,
    );
    assert_eq!(r.status, 403);

    let r = c.send("DELETE", &format!("/api/v1/tokens/{id}"), &auth, "");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c.get("/api/v1/services", &[("authorization", &bearer)]);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(c.get("/metrics", &[("authorization", &bearer)]).status, 401);
    let _ = std::fs::remove_file(users);
}

/// The samples of a Prometheus text exposition, by name and labels as written.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn metrics_pass_promtool_and_match_rvsadm() {
    let (lab, users) = lab(&[]);
    let c = Client::new(&lab);
    // Some traffic first, then none while the two are read.
    for _ in 0..12 {
        lab.ask(PORT);
    }
    std::thread::sleep(Duration::from_millis(300));

    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "bob:bob's secret"
        )
    );
    let wrong = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "bob:nope")
    );
    assert_eq!(c.get("/metrics", &[]).status, 401);
    assert_eq!(c.get("/metrics", &[("authorization", &wrong)]).status, 401);
    // rvsadm before and after the scrape: the same moment when the two agree (a flow expiring
    // in between would move InActConn; then it is read again).
    let (r, stats, listing) = (0..5)
        .find_map(|_| {
            let before = (
                lab.ok(&["-L", "-n", "--stats", "--exact"]),
                lab.ok(&["-L", "-n"]),
            );
            let r = c.get("/metrics", &[("authorization", &basic)]);
            assert_eq!(r.status, 200, "{}", r.body);
            let after = (
                lab.ok(&["-L", "-n", "--stats", "--exact"]),
                lab.ok(&["-L", "-n"]),
            );
            (before == after).then_some((r, after.0, after.1))
        })
        .expect("rvsadm's listing kept changing");
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );

    // promtool (Debian's prometheus package) accepts it.
    let file = lab.dir.join("metrics.txt");
    std::fs::write(&file, &r.body).unwrap();
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("promtool (scripts/install-deps installs prometheus)");
    assert!(
        out.status.success(),
        "promtool: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        r.body
    );

    // The same numbers as rvsadm.
    let m = samples(&r.body);
    let vip = lab.vip_port(PORT);
    let [conns, inpkts, outpkts, inbytes, outbytes] = service_stats(&stats, "TCP", &vip);
    assert!(conns >= 12, "{stats}");
    for (name, v) in [
        ("node_ipvs_connections_total", conns),
        ("node_ipvs_incoming_packets_total", inpkts),
        ("node_ipvs_outgoing_packets_total", outpkts),
        ("node_ipvs_incoming_bytes_total", inbytes),
        ("node_ipvs_outgoing_bytes_total", outbytes),
    ] {
        assert_eq!(
            m.get(name),
            Some(&(v as f64)),
            "{name}\n{stats}\n{}",
            r.body
        );
    }
    let vaddr = lab.vip().to_string();
    for (rs, _fwd, weight, active, inactive) in dest_rows(&listing) {
        let (ip, port) = rs.rsplit_once(':').unwrap();
        let labels = format!(
            "{{local_address=\"{vaddr}\",local_port=\"{PORT}\",remote_address=\"{ip}\",remote_port=\"{port}\",proto=\"TCP\",local_mark=\"\"}}"
        );
        for (name, v) in [
            ("node_ipvs_backend_weight", weight as f64),
            ("node_ipvs_backend_connections_active", active as f64),
            ("node_ipvs_backend_connections_inactive", inactive as f64),
        ] {
            assert_eq!(
                m.get(&format!("{name}{labels}")),
                Some(&v),
                "{name}{labels}\n{}",
                r.body
            );
        }
        let per = service_stats(&stats.replace("  -> ", "TCP "), "TCP", &rs);
        assert_eq!(
            m.get(&format!("rvs_backend_connections_total{labels}")),
            Some(&(per[0] as f64))
        );
        assert_eq!(
            m.get(&format!("rvs_backend_incoming_packets_total{labels}")),
            Some(&(per[1] as f64))
        );
    }
    // rvs's own: the data plane's counters as rvsadm --dataplane shows them, no client address.
    let dp = lab.dataplane();
    assert_eq!(
        m.get("rvs_dataplane_events_total{event=\"forwarded\"}"),
        Some(&(dp["forwarded"] as f64))
    );
    assert!(m.contains_key("rvs_dataplane_drops_total{reason=\"ttl\"}"));
    assert_eq!(m.get("rvs_conn_table_size"), Some(&65536.0));
    assert_eq!(m.get("rvs_health_checkers"), Some(&0.0));
    let client = format!("\"{}\"", lab.cluster.client().ip());
    assert!(!r.body.contains(&client), "{client} in\n{}", r.body);

    // OpenMetrics when asked for it.
    let r = c.get(
        "/metrics",
        &[
            ("authorization", &basic),
            ("accept", "application/openmetrics-text; version=1.0.0"),
        ],
    );
    assert!(r.body.ends_with("# EOF\n"));
    assert!(r.body.contains("# TYPE node_ipvs_connections counter\n"));
    let _ = std::fs::remove_file(users);
}

#[test]
fn a_thousand_real_servers_are_paged() {
    let (lab, users) = lab(&[]);
    let c = Client::new(&lab);
    let vip = lab.vip_port(PORT);
    let svc = format!("tcp:{vip}");
    // 1000 more real servers behind rs0 as their router, so each next hop resolves at once.
    lab.cluster
        .director()
        .netns()
        .ip(&[
            "route",
            "add",
            "198.19.0.0/16",
            "via",
            &lab.rs_ip(0).to_string(),
        ])
        .unwrap();
    let mut restore = String::new();
    for i in 0..1000u32 {
        restore.push_str(&format!(
            "-a -t {vip} -r 198.19.{}.{}:{PORT} -g -w 1\n",
            i / 250,
            i % 250 + 1
        ));
    }
    let start = std::time::Instant::now();
    let out = lab.rvsadm_with_stdin(&["-R"], &restore);
    assert!(out.status.success(), "{}", common::stderr(&out));
    eprintln!("1000 real servers added in {:?}", start.elapsed());
    let (cookie, csrf) = c.login("alice", "alice's secret");
    let auth = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];

    let r = c.get(
        &format!("/api/v1/services/{svc}/servers?offset=950&limit=100"),
        &auth,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["total"], 1003);
    assert_eq!(j["offset"], 950);
    assert_eq!(j["servers"].as_array().unwrap().len(), 53);
    let r = c.get(
        &format!("/api/v1/services/{svc}/servers?offset=0&limit=5000"),
        &auth,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = c.get(&format!("/api/v1/services/{svc}/servers?color=red"), &auth);
    assert_eq!(r.status, 400, "{}", r.body);

    // The console's feed sends one page of the chosen service, not 1003 servers.
    let feed = c.first_event(
        &format!("/api/v1/events?service={svc}&offset=500&limit=50"),
        &auth,
    );
    let s = &feed["services"][0];
    assert_eq!(feed["chosen"], svc.as_str());
    assert_eq!(s["servers_total"], 1003);
    assert_eq!(s["servers_offset"], 500);
    assert_eq!(s["servers"].as_array().unwrap().len(), 50);

    // A change deep in the list, and /metrics with all of them.
    let r = c.send(
        "PUT",
        &format!("/api/v1/services/{svc}/servers/198.19.3.27:{PORT}"),
        &auth,
        r#"{"weight":4}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(weight_of(&lab, &format!("198.19.3.27:{PORT}")), Some(4));
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "alice:alice's secret"
        )
    );
    let start = std::time::Instant::now();
    let r = c.get("/metrics", &[("authorization", &basic)]);
    eprintln!(
        "/metrics with 1003 real servers over HTTPS: {:?}",
        start.elapsed()
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body
            .lines()
            .filter(|l| l.starts_with("node_ipvs_backend_weight{"))
            .count(),
        1003
    );
    let _ = std::fs::remove_file(users);
}

/// Also: the monitor configured by keepalived.conf's `rvs_web` block.
#[test]
fn checker_health_is_in_the_api_and_the_metrics() {
    use common::keepalived::{ConfDir, DELAY_LOOP, short_timers};
    let users = std::env::temp_dir().join(format!("rvs-web-users-{}-ka", std::process::id()));
    let _ = std::fs::remove_file(&users);
    common::web::add_user(&users, "alice", "admin", "alice's secret");
    let cluster = DrCluster::builder().real_servers(2).build().unwrap();
    let mut conf = format!(
        "virtual_server {} {PORT} {{\n    delay_loop {DELAY_LOOP}\n    lb_algo wrr\n    \
         lb_kind DR\n    protocol TCP\n",
        cluster.vip()
    );
    for rs in cluster.real_servers() {
        conf.push_str(&format!(
            "    real_server {} {PORT} {{\n        weight 1\n        TCP_CHECK {{\n            {}\n            alpha\n        }}\n    }}\n",
            rs.ip(),
            short_timers()
        ));
    }
    conf.push_str("}\n");
    // The monitor from the same file this time (rvs_web), not from options.
    conf.push_str(&format!(
        "rvs_web {{\n    listen :{}\n    users {}\n}}\n",
        common::web::WEB_PORT,
        users.display()
    ));
    let dir = ConfDir::new();
    let file = dir.write("keepalived.conf", &conf, false);
    let mut lab = Lab::on(cluster, PORT, &["-f", file.to_str().unwrap()]);
    // The line servers, held here so that one can be stopped while the client borrows the lab.
    let mut servers = std::mem::take(&mut lab.tcp);
    let c = Client::new(&lab);
    let (cookie, _) = c.login("alice", "alice's secret");
    let auth = [("cookie", cookie.as_str())];
    let rs0 = lab.rs_ip(0).to_string();
    let health_of = |c: &Client, ip: &str| -> Option<serde_json::Value> {
        let h = c.get("/api/v1/health", &auth).json();
        assert_eq!(h["checkers"], true, "{h}");
        h["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["dest"]["addr"] == ip)
            .cloned()
    };
    lab.eventually("both servers checked up", || {
        (0..2).all(|i| health_of(&c, &lab.rs_ip(i).to_string()).is_some_and(|h| h["up"] == true))
    });

    // rs0's service stops: down, with the checker's reason, in the API and the metrics.
    drop(servers.remove(0));
    lab.eventually("rs0 checked down", || {
        health_of(&c, &rs0).is_some_and(|h| h["up"] == false)
    });
    let h = health_of(&c, &rs0).unwrap();
    assert!(h["reason"].as_str().unwrap().contains("TCP_CHECK"), "{h}");
    assert_eq!(h["transitions"], 1, "{h}");
    let svc = format!("tcp:{}", lab.vip_port(PORT));
    let s = c.get(&format!("/api/v1/services/{svc}"), &auth).json();
    let rs1 = format!("{}:{PORT}", lab.rs_ip(1));
    let listed: Vec<&serde_json::Value> = s["servers"].as_array().unwrap().iter().collect();
    assert!(
        listed
            .iter()
            .any(|d| d["id"] == rs1.as_str() && d["health"]["up"] == true),
        "{s}"
    );
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "alice:alice's secret"
        )
    );
    let m = samples(&c.get("/metrics", &[("authorization", &basic)]).body);
    let labels = |ip: &str| {
        format!(
            "{{local_address=\"{}\",local_port=\"{PORT}\",remote_address=\"{ip}\",remote_port=\"{PORT}\",proto=\"TCP\",local_mark=\"\"}}",
            lab.vip()
        )
    };
    assert_eq!(m.get("rvs_health_checkers"), Some(&1.0));
    assert_eq!(m.get(&format!("rvs_health_up{}", labels(&rs0))), Some(&0.0));
    assert_eq!(
        m.get(&format!("rvs_health_transitions_total{}", labels(&rs0))),
        Some(&1.0)
    );
    assert_eq!(
        m.get(&format!(
            "rvs_health_up{}",
            labels(&lab.rs_ip(1).to_string())
        )),
        Some(&1.0)
    );
    drop(c);
    drop(lab);
    drop(servers);
    drop(dir);
    let _ = std::fs::remove_file(users);
}
