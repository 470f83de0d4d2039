//! The corpus under crates/rvs/tests/keepalived: every `ok/*.conf` loads with exactly the
//! warnings its `! expect-warning:` lines name; every `bad/*.conf` fails with the message of its
//! `! expect:` line (or loads with the warnings it expects). Then what the files mean.

use std::{
    fs,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use super::*;
use crate::{
    check::{CheckKind, DnsType, HttpProtocol},
    model::{DestAddr, FwdMethod, Protocol, ServiceId, TunCsum, TunType, svc_flags},
};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keepalived")
}

/// A message with the corpus directory taken out of its paths.
fn rel(s: &str) -> String {
    s.replace(&format!("{}/", corpus().display()), "")
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(corpus().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    v.sort();
    v
}

fn expected(path: &Path, prefix: &str) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|l| l.trim().to_owned())
        .collect()
}

fn warnings(cfg: &KeepalivedConfig) -> Vec<String> {
    cfg.warnings.iter().map(|w| rel(&w.to_string())).collect()
}

fn load_ok(name: &str) -> KeepalivedConfig {
    load(&corpus().join(name)).unwrap_or_else(|e| panic!("{}", rel(&e.to_string())))
}

#[test]
fn ok_corpus_loads_with_expected_warnings() {
    let all = files("ok");
    assert!(all.len() >= 10, "corpus missing: {all:?}");
    for path in all {
        let cfg =
            load(&path).unwrap_or_else(|e| panic!("{}: {}", path.display(), rel(&e.to_string())));
        assert_eq!(
            warnings(&cfg),
            expected(&path, "! expect-warning:"),
            "{}",
            path.display()
        );
    }
}

#[test]
fn bad_corpus_reports_the_right_place() {
    let all = files("bad");
    assert!(all.len() >= 25, "corpus missing: {all:?}");
    for path in all {
        let errors = expected(&path, "! expect:");
        let warns = expected(&path, "! expect-warning:");
        assert!(
            errors.len() + warns.len() > 0,
            "{} says nothing it expects",
            path.display()
        );
        match (load(&path), errors.first()) {
            (Err(e), Some(want)) => assert_eq!(&rel(&e.to_string()), want, "{}", path.display()),
            (Ok(cfg), None) => assert_eq!(warnings(&cfg), warns, "{}", path.display()),
            (Ok(_), Some(want)) => panic!("{} loaded; expected {want}", path.display()),
            (Err(e), None) => panic!("{}: {}", path.display(), rel(&e.to_string())),
        }
    }
}

#[test]
fn a_hostile_depth_is_an_error_not_a_stack_overflow() {
    let text = "a {\n".repeat(200_000);
    let e = parse_str("deep.conf", &text).unwrap_err();
    assert_eq!(
        e.to_string(),
        "deep.conf:33:3: blocks nested deeper than 32"
    );
}

fn inet(proto: Protocol, addr: &str, port: u16) -> ServiceId {
    ServiceId::Inet {
        proto,
        addr: addr.parse().unwrap(),
        port,
    }
}

fn dest(addr: &str, port: u16) -> DestAddr {
    DestAddr {
        addr: addr.parse().unwrap(),
        port,
    }
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn seed_document_gives_its_ipvsadm_table() {
    let cfg = load_ok("ok/seed_001.conf");
    let g = &cfg.global;
    assert_eq!(g.router_id.as_deref(), Some("LVS_DEVEL"));
    assert_eq!(g.notification_email, ["cnseek@gmail.com"]);
    assert_eq!(
        g.notification_email_from.as_deref(),
        Some("sns-lvs@gmail.com")
    );
    assert_eq!(
        g.smtp_server,
        Some(SmtpServer {
            host: "127.0.0.1".into(),
            port: 25
        })
    );
    assert_eq!(
        g.smtp_connect_timeout,
        Duration::from_secs(30),
        "commented out: the default"
    );
    let vi = &cfg.vrrp_instances[0];
    assert_eq!(
        (vi.name.as_str(), vi.state_master, vi.virtual_router_id),
        ("VI_1", Some(true), Some(51))
    );
    let vips: Vec<_> = vi.virtual_ipaddress.iter().map(|a| a.addr).collect();
    assert_eq!(vips, ["61.164.122.8".parse::<IpAddr>().unwrap()]);
    assert_eq!(vi.auth, Some(VrrpAuth::Pass("1111".into())));

    // The seed's `ipvsadm -ln`: TCP 61.164.122.8:80 wrr persistent 60, two Route servers of weight 3.
    let s = desired_services(&cfg);
    assert_eq!(s.len(), 1);
    let svc = &s[0];
    assert_eq!(svc.service, inet(Protocol::Tcp, "61.164.122.8", 80));
    assert_eq!(svc.config.scheduler, "wrr");
    assert_eq!(svc.config.flags, svc_flags::PERSISTENT);
    assert_eq!(svc.config.timeout, 60);
    assert_eq!(svc.config.netmask, 0xffff_ffff);
    assert_eq!(svc.name, "[61.164.122.8]:tcp:80");
    assert_eq!(
        (svc.quorum, svc.hysteresis, svc.sorry_server.is_none()),
        (1, 0, true)
    );
    assert!(
        !svc.smtp_alert,
        "quorum mail is off unless smtp_alert says so"
    );
    let addrs: Vec<_> = svc.dests.iter().map(|d| d.addr).collect();
    assert_eq!(addrs, [dest("61.164.122.9", 80), dest("61.164.122.10", 80)]);
    for d in &svc.dests {
        assert_eq!((d.config.fwd, d.config.weight), (FwdMethod::Route, 3));
        assert!(
            d.smtp_alert,
            "real server mail is on when mail is configured"
        );
        assert!(!d.inhibit_on_failure);
        let c = &d.checkers[0];
        assert_eq!(c.kind, CheckKind::Tcp);
        assert_eq!(c.target, SocketAddr::new(d.addr.addr, 80));
        assert_eq!(c.connect_timeout, Duration::from_secs(10));
        assert_eq!(
            c.retry, 1,
            "nb_get_retry is no TCP_CHECK keyword: keepalived keeps the default"
        );
        assert_eq!(c.delay_before_retry, Duration::from_secs(3));
        assert_eq!(
            c.delay_loop,
            Duration::from_secs(6),
            "inherited from the virtual server"
        );
        assert_eq!(
            c.warmup,
            Duration::from_secs(6),
            "warmup defaults to delay_loop"
        );
        assert!(!c.alpha);
    }
}

#[test]
fn includes_expand_in_glob_order_relative_to_each_file() {
    let cfg = load_ok("ok/include_glob.conf");
    assert_eq!(cfg.global.router_id.as_deref(), Some("DIRECTOR_A"));
    assert_eq!(
        cfg.global.smtp_server,
        Some(SmtpServer {
            host: "192.0.2.25".into(),
            port: 2525
        })
    );
    let s = desired_services(&cfg);
    let ids: Vec<_> = s.iter().map(|s| s.service).collect();
    assert_eq!(
        ids,
        [
            inet(Protocol::Tcp, "192.0.2.10", 80),
            inet(Protocol::Udp, "192.0.2.10", 53)
        ]
    );
    let web = &s[0];
    assert_eq!(
        web.dests
            .iter()
            .map(|d| (d.addr, d.config.weight))
            .collect::<Vec<_>>(),
        [(dest("10.1.0.11", 80), 2), (dest("10.1.0.12", 80), 1)]
    );
    assert_eq!(
        web.dests[1].checkers[0].connect_timeout,
        Duration::from_secs(2)
    );
    assert_eq!(web.dests[0].checkers[0].delay_loop, Duration::from_secs(10));
    let dns = &s[1].dests[0].checkers[0];
    assert_eq!(
        (dns.retry, dns.delay_before_retry),
        (3, Duration::from_secs(60)),
        "DNS_CHECK defaults"
    );
    assert_eq!(
        dns.kind,
        CheckKind::Dns(crate::check::DnsCheck {
            qtype: DnsType::A,
            name: "example.org".into()
        })
    );
    // Positions name the included files.
    assert!(
        cfg.virtual_servers[1]
            .pos
            .file
            .ends_with("ok/include/vs-20-dns.part")
    );
    assert_eq!(cfg.virtual_servers[0].real_servers[1].pos.line, 1);
}

#[test]
fn group_expands_ranges_and_fwmarks_with_shared_checkers() {
    let cfg = load_ok("ok/group_ranges.conf");
    let s = desired_services(&cfg);
    let ids: Vec<_> = s.iter().map(|s| s.service).collect();
    let tcp = |a: &str, p| inet(Protocol::Tcp, a, p);
    assert_eq!(
        ids,
        [
            tcp("192.0.2.1", 80),
            tcp("192.0.2.10", 80),
            tcp("192.0.2.11", 80),
            tcp("192.0.2.12", 80),
            tcp("192.0.2.254", 8080),
            tcp("192.0.2.255", 8080),
            tcp("192.0.3.0", 8080),
            tcp("192.0.3.1", 8080),
            tcp("198.51.100.8", 443),
            tcp("198.51.100.9", 443),
            tcp("198.51.100.10", 443),
            tcp("198.51.100.11", 443),
            ServiceId::Fwmark {
                mark: 7,
                ipv6: false
            },
            ServiceId::Fwmark {
                mark: 8,
                ipv6: false
            },
        ]
    );
    for svc in &s {
        assert_eq!(svc.virtual_server, 0);
        assert_eq!(svc.config.timeout, 360, "bare persistence_timeout");
        // The real server has no port: it takes each service's.
        assert_eq!(svc.dests[0].addr.port, svc.service.port());
        assert_eq!(svc.dests[0].checkers[0].target, sock("10.2.0.1:80"));
    }
}

#[test]
fn fwmark_and_tunnels() {
    let cfg = load_ok("ok/fwmark_tun.conf");
    let s = desired_services(&cfg);
    assert_eq!(
        s[0].service,
        ServiceId::Fwmark {
            mark: 5,
            ipv6: false
        }
    );
    assert_eq!(s[0].config.scheduler, "mh");
    assert_eq!(
        s[0].config.flags,
        svc_flags::PERSISTENT | svc_flags::SCHED1 | svc_flags::SCHED2
    );
    assert_eq!(
        (s[0].config.timeout, s[0].config.netmask),
        (600, 0xffff_ff00)
    );
    let d = &s[0].dests;
    assert_eq!(d[0].addr, dest("10.3.0.1", 0));
    let tun = |d: &DesiredDest| {
        (
            d.config.fwd,
            d.config.tun_type,
            d.config.tun_port,
            d.config.tun_csum,
        )
    };
    assert_eq!(
        tun(&d[0]),
        (FwdMethod::Tunnel, TunType::Gue, 6080, TunCsum::Csum)
    );
    assert_eq!(d[0].config.weight, 5);
    assert_eq!(
        tun(&d[1]),
        (FwdMethod::Tunnel, TunType::Gre, 0, TunCsum::Csum)
    );
    assert_eq!(
        tun(&d[2]),
        (FwdMethod::Tunnel, TunType::Ipip, 0, TunCsum::NoCsum)
    );
    assert_eq!(
        s[1].service,
        ServiceId::Fwmark {
            mark: 6,
            ipv6: true
        }
    );
    assert_eq!(s[1].config.flags, svc_flags::PERSISTENT | svc_flags::SCHED2);
    assert_eq!(s[1].config.netmask, 64);
    assert_eq!(s[1].dests[0].checkers[0].kind, CheckKind::Ping);
    assert_eq!(s[1].dests[0].checkers[0].target, sock("[2001:db8::10]:0"));
}

#[test]
fn sorry_server_quorum_and_notifiers() {
    let cfg = load_ok("ok/sorry_quorum.conf");
    let s = &desired_services(&cfg)[0];
    assert_eq!((s.quorum, s.hysteresis, s.omega), (4, 1, true));
    assert_eq!(
        s.quorum_up.as_deref(),
        Some("/usr/local/bin/vs-notify.sh UP 'web pool'")
    );
    let sorry = s.sorry_server.as_ref().unwrap();
    assert_eq!(sorry.addr, dest("10.4.0.250", 8443));
    assert_eq!(
        (sorry.config.fwd, sorry.config.weight, sorry.inhibit),
        (FwdMethod::Route, 1, true)
    );
    let (a, b) = (&s.dests[0], &s.dests[1]);
    assert_eq!(
        (a.config.fwd, a.config.u_threshold, a.config.l_threshold),
        (FwdMethod::Masq, 1000, 800)
    );
    assert!(a.inhibit_on_failure && !b.inhibit_on_failure);
    assert_eq!(
        a.notify_up.as_deref(),
        Some("/usr/local/bin/rs-notify.sh up 10.4.0.1")
    );
    assert_eq!(a.notify_down.as_deref(), Some("/usr/local/bin/rs-down.sh"));
    assert!(!a.smtp_alert, "no mail configured");
    assert!(
        a.checkers[0].alpha && !a.initially_up(),
        "alpha from the virtual server"
    );
    assert_eq!((a.checkers[0].retry, b.checkers[0].retry), (2, 1));
    assert_eq!(b.checkers[0].delay_loop, Duration::from_secs(3));
}

#[test]
fn http_and_ssl_checkers() {
    let cfg = load_ok("ok/http_ssl.conf");
    let s = desired_services(&cfg);
    let c = &s[0].dests[0].checkers[0];
    let CheckKind::Http(h) = &c.kind else {
        panic!("{c:?}")
    };
    assert!(h.tls.is_none());
    assert_eq!(
        h.virtualhost.as_deref(),
        Some("www.example.org"),
        "from the virtual server"
    );
    assert_eq!(h.urls.len(), 3);
    assert_eq!(h.urls[0].status, [(200, 200)]);
    assert_eq!(
        h.urls[1].digest.as_deref(),
        Some("9b3a0c85a887a256d6939da88aabd8cd")
    );
    assert_eq!(
        h.urls[1].status,
        [(200, 299), (301, 301), (302, 302), (400, 404)]
    );
    assert!(h.urls[2].status.is_empty() && h.urls[2].accepts(204) && !h.urls[2].accepts(301));
    assert_eq!(h.urls[2].virtualhost.as_deref(), Some("status.example.org"));
    assert_eq!(
        (c.retry, c.delay_before_retry, c.connect_timeout),
        (2, Duration::from_secs(3), Duration::from_secs(3))
    );
    let ssl = &s[1].dests[0].checkers;
    let CheckKind::Http(h) = &ssl[0].kind else {
        panic!()
    };
    assert_eq!(ssl[0].kind.name(), "SSL_GET");
    assert_eq!(
        h.virtualhost.as_deref(),
        Some("secure.example.org"),
        "from the real server"
    );
    assert!(h.tls.as_ref().unwrap().enable_sni);
    assert_eq!(h.protocol, HttpProtocol::Http11);
    let CheckKind::Http(h2) = &ssl[1].kind else {
        panic!()
    };
    assert_eq!(
        h2.tls.as_ref().unwrap().sni_name.as_deref(),
        Some("other.example.org")
    );
    assert_eq!(ssl[1].target, sock("10.5.0.1:8443"));
}

#[test]
fn other_checkers_and_inheritance() {
    let cfg = load_ok("ok/checkers.conf");
    let s = desired_services(&cfg);
    let c = &s[0].dests[0].checkers;
    // SMTP_CHECK: connect_ip/bindto; connect_timeout from the VS, delay_before_retry from the RS.
    assert_eq!(
        c[0].kind,
        CheckKind::Smtp(crate::check::SmtpCheck {
            helo_name: "director.example.org".into()
        })
    );
    assert_eq!(c[0].target, sock("10.6.1.1:25"));
    assert_eq!(c[0].bind, Some(sock("10.6.255.1:2525")));
    assert_eq!(c[0].connect_timeout, Duration::from_secs(4));
    assert_eq!(c[0].delay_before_retry, Duration::from_secs(2));
    assert_eq!(
        (c[0].delay_loop, c[0].warmup, c[0].retry),
        (Duration::from_secs(20), Duration::ZERO, 1)
    );
    let CheckKind::Misc(m) = &c[1].kind else {
        panic!()
    };
    assert_eq!(m.path, "/usr/local/bin/weight.sh 10.6.0.1");
    assert_eq!(
        (m.timeout, m.dynamic, c[1].retry),
        (Some(Duration::from_secs(5)), true, 0)
    );
    assert_eq!(
        (c[2].kind.clone(), c[2].delay_loop, c[2].retry),
        (CheckKind::Ping, Duration::from_secs(2), 4)
    );
    let c = &s[1].dests[0].checkers;
    assert_eq!(s[1].service, inet(Protocol::Udp, "192.0.2.40", 53));
    assert_eq!(
        c[0].kind,
        CheckKind::Dns(crate::check::DnsCheck {
            qtype: DnsType::Soa,
            name: ".".into()
        })
    );
    let CheckKind::Udp(u) = &c[1].kind else {
        panic!()
    };
    assert_eq!(u.payload.as_deref(), Some(&[0x00, 0x01, 0xab][..]));
    assert_eq!(
        u.require_reply.as_deref(),
        Some(&[(0x00, 0xff), (0x00, 0xf0)][..])
    );
    assert_eq!((u.min_reply_length, u.max_reply_length), (2, 512));
    let CheckKind::Misc(m) = &c[2].kind else {
        panic!()
    };
    assert_eq!(
        m.timeout,
        Some(Duration::from_secs(60)),
        "misc_timeout defaults to delay_loop"
    );
}

#[test]
fn global_defs_in_full() {
    let cfg = load_ok("ok/global_full.conf");
    let g = &cfg.global;
    assert_eq!(
        g.notification_email,
        [
            "ops@example.org",
            "Night shift <night@example.org>",
            "noc@example.org"
        ]
    );
    assert_eq!(
        g.notification_email_from.as_deref(),
        Some("LVS <lvs@example.org>")
    );
    assert_eq!(
        g.smtp_server,
        Some(SmtpServer {
            host: "mail.example.org".into(),
            port: 587
        })
    );
    assert_eq!(g.smtp_connect_timeout, Duration::from_secs(12));
    assert_eq!(g.smtp_helo_name.as_deref(), Some("lb-01.example.org"));
    assert_eq!(
        g.lvs_timeouts,
        LvsTimeouts {
            tcp: Some(7200),
            tcp_fin: Some(60),
            udp: Some(120)
        }
    );
    let t = g.lvs_timeouts.apply(crate::model::Timeouts::default());
    assert_eq!((t.tcp, t.tcp_fin, t.udp), (7200, 60, 120));
    let d = g.lvs_sync_daemon.as_ref().unwrap();
    assert_eq!(d.interface, "eth0");
    assert_eq!(
        (d.instance.as_deref(), d.sync_id, d.maxlen, d.port, d.ttl),
        (Some("VI_1"), Some(51), Some(1472), Some(8848), Some(1))
    );
    assert_eq!(d.group, Some("224.0.0.81".parse().unwrap()));
    assert_eq!(router_id(g), "lb-01");
    let m = mail_settings(g).unwrap();
    assert_eq!(
        (m.server.as_str(), m.port, m.from.as_str()),
        ("mail.example.org", 587, "LVS <lvs@example.org>")
    );
    assert_eq!(
        (m.helo_name.as_str(), m.timeout, m.to.len()),
        ("lb-01.example.org", Duration::from_secs(12), 3)
    );
    let seed = load_ok("ok/seed_001.conf");
    let m = mail_settings(&seed.global).unwrap();
    assert_eq!(
        (m.server.as_str(), m.port, m.timeout),
        ("127.0.0.1", 25, Duration::from_secs(30))
    );
    assert!(mail_settings(&load_ok("ok/vrrp.conf").global).is_none());
}

#[test]
fn lexical_shapes() {
    let cfg = load_ok("ok/lexical.conf");
    let s = desired_services(&cfg);
    assert_eq!(s[0].config.scheduler, "lc");
    assert_eq!(
        (s[0].config.timeout, s[0].config.netmask),
        (300, 0xffff_ff00)
    );
    let d = &s[0].dests;
    assert_eq!((d[0].config.weight, d[0].config.fwd), (4, FwdMethod::Route));
    assert_eq!(
        d[0].notify_down.as_deref(),
        Some("/usr/bin/logger -t lvs 'rs 10.7.0.1 down'")
    );
    assert_eq!(d[0].checkers[0].connect_timeout, Duration::from_secs(3));
    assert_eq!(d[1].addr, dest("10.7.0.2", 80), "continued line");
    assert_eq!(s[1].service, inet(Protocol::Tcp, "2001:db8::50", 443));
    assert_eq!((s[1].config.timeout, s[1].config.netmask), (360, 64));
    assert_eq!(
        s[1].dests[0].addr.addr,
        "2001:db8::51".parse::<IpAddr>().unwrap()
    );
    let crlf = desired_services(&load_ok("ok/crlf.conf"));
    assert_eq!(
        crlf[0].dests[0].config.fwd,
        FwdMethod::Masq,
        "lb_kind NAT (also the default)"
    );
}

#[test]
fn defaults_without_settings() {
    let cfg = parse_str(
        "/nonexistent/k.conf",
        "virtual_server 192.0.2.1 80 {\n real_server 10.0.0.1 80 {\n  HTTP_GET { url { path / } }\n  TCP_CHECK\n  MISC_CHECK { misc_path /bin/true }\n }\n real_server 10.0.0.2 80\n}\n",
    )
    .unwrap();
    let s = &desired_services(&cfg)[0];
    assert_eq!(s.config.scheduler, "wlc");
    assert_eq!(s.config.flags, 0);
    assert_eq!(s.dests[0].config.fwd, FwdMethod::Masq);
    let c = &s.dests[0].checkers;
    assert_eq!(
        (c[0].retry, c[0].delay_before_retry),
        (1, Duration::from_secs(3)),
        "HTTP_GET"
    );
    assert_eq!(
        (c[1].retry, c[1].delay_before_retry),
        (1, Duration::from_secs(1)),
        "TCP_CHECK"
    );
    assert_eq!(c[2].retry, 0, "MISC_CHECK");
    for c in c {
        assert_eq!(
            (c.delay_loop, c.connect_timeout, c.warmup),
            (
                Duration::from_secs(60),
                Duration::from_secs(5),
                Duration::from_secs(60)
            )
        );
    }
    assert!(s.dests[1].checkers.is_empty() && s.dests[1].initially_up());
    assert_eq!(s.dests[1].config.weight, 1);
}

#[test]
fn unknown_keywords_warn_with_file_and_line() {
    let cfg = parse_str(
        "k.conf",
        "virtual_server 192.0.2.1 80 {\n  lb_algo rr\n  bogus_option 3\n  real_server 10.0.0.1 80 {\n    mystery { a b }\n  }\n}\n",
    )
    .unwrap();
    let w: Vec<String> = cfg.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        [
            "k.conf:3: unknown keyword 'bogus_option'",
            "k.conf:5: unknown keyword 'mystery'"
        ]
    );
}

#[test]
fn persistence_timeout_zero_is_not_persistent() {
    let s = desired_services(&load_ok("ok/persistence_zero.conf"));
    assert_eq!((s[0].config.flags, s[0].config.timeout), (0, 0));
}

#[test]
fn rvs_mark_rules_come_out_in_file_order() {
    let cfg = load(&corpus().join("ok/rvs_mark.conf")).unwrap();
    let rules: Vec<String> = cfg.mark_rules().iter().map(|r| r.to_string()).collect();
    assert_eq!(
        rules,
        [
            "tcp:198.18.0.100:80 -> 1",
            "tcp:198.18.0.100:443 -> 1",
            "udp:[2001:db8::100]:5000-5100 -> 1",
            "any:198.18.0.0/24:8000-8999 -> 2",
        ]
    );
}

#[test]
fn vrrp_keywords_parse_into_the_model() {
    let cfg = parse_str(
        "k.conf",
        "global_defs {\n    vrrp_version 3\n}\n\
         vrrp_script chk {\n    script \"/bin/true\"\n    interval 0.5\n    timeout 2\n    \
         weight -20 reverse\n    rise 2\n    fall 3\n    init_fail\n}\n\
         vrrp_sync_group G {\n    group {\n        VI_1\n    }\n    notify \"/n.sh\"\n    \
         notify_master /m.sh\n}\n\
         vrrp_instance VI_1 {\n    state MASTER\n    interface eth0\n    virtual_router_id 51\n    \
         priority 255\n    advert_int 0.1\n    version 3\n    nopreempt\n    preempt_delay 30\n    \
         authentication {\n        auth_type PASS\n        auth_pass s3cret\n    }\n    \
         virtual_ipaddress {\n        198.18.0.100/24 dev eth1 label eth1:vip scope link\n        \
         198.18.0.101\n    }\n    virtual_ipaddress_excluded {\n        2001:db8::100/64\n    }\n    \
         unicast_src_ip 198.18.0.2\n    unicast_peer {\n        198.18.0.3\n    }\n    \
         track_interface {\n        eth1 weight 10\n        eth2\n    }\n    \
         track_script {\n        chk weight 5 reverse\n    }\n    \
         notify_master /m.sh\n    notify_backup /b.sh\n    notify_fault /f.sh\n    \
         notify_stop /s.sh\n    notify /n.sh\n    garp_master_delay 2\n    garp_master_repeat 3\n    \
         garp_master_refresh 60\n    garp_master_refresh_repeat 2\n    v3_checksum_as_v2\n    \
         old_unicast_checksum\n    lvs_sync_daemon_interface eth1\n    use_vmac\n}\n",
    )
    .unwrap();
    assert_eq!(cfg.global.vrrp_version, Some(3));
    let s = &cfg.vrrp_scripts[0];
    assert_eq!(
        (
            s.interval,
            s.timeout,
            s.weight,
            s.weight_reverse,
            s.rise,
            s.fall,
            s.init_fail
        ),
        (
            Some(Duration::from_millis(500)),
            Some(Duration::from_secs(2)),
            Some(-20),
            true,
            Some(2),
            Some(3),
            true
        )
    );
    let g = &cfg.vrrp_sync_groups[0];
    assert_eq!(
        (g.group.as_slice(), g.notify.as_deref()),
        (&["VI_1".to_owned()][..], Some("/n.sh"))
    );
    let v = &cfg.vrrp_instances[0];
    assert_eq!(
        (
            v.state_master,
            v.priority,
            v.advert_int,
            v.version,
            v.nopreempt
        ),
        (
            Some(true),
            Some(255),
            Some(Duration::from_millis(100)),
            Some(3),
            true
        )
    );
    assert_eq!(v.preempt_delay, Some(Duration::from_secs(30)));
    assert_eq!(v.auth, Some(VrrpAuth::Pass("s3cret".into())));
    assert_eq!(
        v.virtual_ipaddress[0],
        VirtualAddress {
            addr: "198.18.0.100".parse().unwrap(),
            prefix_len: 24,
            dev: Some("eth1".into()),
            label: Some("eth1:vip".into()),
            scope: Some("link".into()),
        }
    );
    assert_eq!(v.virtual_ipaddress[1].prefix_len, 32);
    assert_eq!(v.virtual_ipaddress_excluded[0].prefix_len, 64);
    assert_eq!(v.unicast_peer, ["198.18.0.3".parse::<IpAddr>().unwrap()]);
    assert_eq!(
        v.track_interface,
        [
            Tracked {
                name: "eth1".into(),
                weight: Some(10),
                reverse: false
            },
            Tracked {
                name: "eth2".into(),
                weight: None,
                reverse: false
            }
        ]
    );
    assert_eq!(v.track_script[0].weight, Some(5));
    assert!(v.track_script[0].reverse);
    assert_eq!(
        [
            &v.notify_master,
            &v.notify_backup,
            &v.notify_fault,
            &v.notify_stop,
            &v.notify
        ]
        .map(|n| n.as_deref()),
        [
            Some("/m.sh"),
            Some("/b.sh"),
            Some("/f.sh"),
            Some("/s.sh"),
            Some("/n.sh")
        ]
    );
    assert_eq!(
        (
            v.garp_master_delay,
            v.garp_master_repeat,
            v.garp_master_refresh,
            v.garp_master_refresh_repeat
        ),
        (
            Some(Duration::from_secs(2)),
            Some(3),
            Some(Duration::from_secs(60)),
            Some(2)
        )
    );
    assert!(v.v3_checksum_as_v2 && v.old_unicast_checksum);
    assert_eq!(v.lvs_sync_daemon_interface.as_deref(), Some("eth1"));
    let w: Vec<String> = cfg.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        ["k.conf:63: 'use_vmac' is not supported by rvs; ignored"]
    );
}

#[test]
fn vrrp_values_are_errors_at_their_place() {
    let err = |body: &str| {
        parse_str("k.conf", &format!("vrrp_instance V {{\n{body}\n}}\n"))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err("    virtual_ipaddress {\n        198.18.0.1/33\n    }"),
        "k.conf:3:9: invalid prefix length '33' (expected 0..32)"
    );
    assert_eq!(
        err("    virtual_ipaddress {\n        198.18.0.1 dev\n    }"),
        "k.conf:3:20: 'dev' needs an interface"
    );
    assert_eq!(
        err("    virtual_ipaddress {\n        198.18.0.1 color red\n    }"),
        "k.conf:3:20: unexpected 'color' in a virtual address (expected dev, label or scope)"
    );
    assert_eq!(
        err("    track_script {\n        chk weight 300\n    }"),
        "k.conf:3:20: invalid weight '300' (expected an integer -253..253)"
    );
    assert_eq!(
        err("    version 4"),
        "k.conf:2:13: invalid version '4' (expected an integer 2..3)"
    );
    assert_eq!(
        err("    authentication {\n        auth_type MD5\n    }"),
        "k.conf:3:19: invalid auth_type 'MD5' (expected PASS or AH)"
    );
    assert_eq!(
        err("    advert_int fast"),
        "k.conf:2:16: invalid advert_int 'fast' (expected seconds, e.g. 3 or 0.5)"
    );
}

proptest::proptest! {
    /// Any text, and any mangling of a full VRRP configuration, loads or is refused: never a
    /// panic, in the parser or in what the VRRP task makes of it.
    #[test]
    fn vrrp_configurations_never_panic(
        cut in 0usize..2000,
        noise in proptest::collection::vec(proptest::prelude::any::<char>(), 0..40),
    ) {
        let base = std::fs::read_to_string(corpus().join("ok/vrrp.conf")).unwrap();
        let cut = cut.min(base.len());
        let cut = (0..=cut).rev().find(|&i| base.is_char_boundary(i)).unwrap_or(0);
        let text: String = base[..cut].chars().chain(noise).chain(base[cut..].chars()).collect();
        if let Ok(cfg) = parse_str("k.conf", &text) {
            let _ = crate::daemon::vrrp::instance::plan(&cfg);
        }
    }
}

#[test]
fn rvs_web_block() {
    let cfg = parse_str(
        "k.conf",
        "rvs_web {\n    listen :8443\n    users /etc/rvs/web-users\n    session_idle 60\n}\n",
    )
    .unwrap();
    let w = cfg.web.unwrap();
    assert_eq!(w.listen, Some("[::]:8443".parse().unwrap()));
    assert_eq!(w.users, Some(PathBuf::from("/etc/rvs/web-users")));
    assert_eq!(w.session_idle, Some(Duration::from_secs(60)));
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    for (text, says) in [
        (
            "rvs_web {\n    users /x\n}\n",
            "k.conf:1:1: rvs_web needs 'listen [ADDR]:PORT'",
        ),
        (
            "rvs_web {\n    listen :8443\n    cert /c\n}\n",
            "k.conf:1:1: rvs_web: cert and key go together",
        ),
        (
            "rvs_web {\n    listen nowhere\n}\n",
            "k.conf:2:12: \"nowhere\": expected [ADDR]:PORT",
        ),
    ] {
        let e = parse_str("k.conf", text).unwrap_err().to_string();
        assert!(e.starts_with(says), "{e}");
    }
}

#[test]
fn rvs_bgp_block() {
    let cfg = parse_str(
        "k.conf",
        "rvs_bgp {\n    local_as 4200000005\n    hold_time 9\n    graceful_restart 120\n    neighbor 198.18.1.254 {\n        remote_as 65001\n        local_address 198.18.1.1\n        md5_password \"s3cret\"\n    }\n    neighbor 2001:db8:1::fe {\n        remote_as 65001\n        passive\n    }\n    prefix 198.19.4.0/24 {\n        services 198.19.4.1:80 198.19.4.2\n        med 10\n        community 65005:100\n        prepend 2\n    }\n    prefix 2001:db8:4::/48\n}\n",
    )
    .unwrap();
    let b = cfg.bgp.unwrap();
    assert_eq!(b.local_as, 4_200_000_005);
    assert_eq!(b.router_id, Some("198.18.1.1".parse().unwrap()));
    assert_eq!(b.hold_time, 9);
    assert_eq!(b.graceful_restart, Some(120));
    assert_eq!(b.neighbors.len(), 2);
    assert_eq!(b.neighbors[0].md5_password.as_deref(), Some("s3cret"));
    assert!(b.neighbors[1].passive);
    assert_eq!(b.prefixes[0].services.len(), 2);
    assert_eq!(b.prefixes[0].communities, vec![65005 << 16 | 100]);
    assert_eq!(b.prefixes[0].prepend, 2);
    assert_eq!(b.prefixes[1].prefix.len, 48);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let n = "    neighbor 198.18.1.254 {\n        remote_as 65001\n    }\n";
    for (text, says) in [
        (
            format!("rvs_bgp {{\n{n}}}\n"),
            "k.conf:1:1: rvs_bgp needs 'local_as AS'",
        ),
        (
            "rvs_bgp {\n    local_as 65005\n}\n".into(),
            "k.conf:1:1: rvs_bgp needs at least one 'neighbor ADDR { ... }'",
        ),
        (
            format!("rvs_bgp {{\n    local_as 65005\n{n}}}\n"),
            "k.conf:1:1: rvs_bgp needs 'router_id ADDR'",
        ),
        (
            format!("rvs_bgp {{\n    local_as 0\n{n}}}\n"),
            "k.conf:2:14: invalid local_as '0'",
        ),
        (
            format!(
                "rvs_bgp {{\n    local_as 65005\n    router_id 198.18.1.1\n{n}    prefix 198.19.4.1/24\n}}\n"
            ),
            "k.conf:7:12: prefix '198.19.4.1/24' has host bits set",
        ),
        (
            format!(
                "rvs_bgp {{\n    local_as 65005\n    router_id 198.18.1.1\n{n}    prefix 198.19.4.0/24 {{\n        community 65005\n    }}\n}}\n"
            ),
            "k.conf:8:19: invalid community '65005'",
        ),
        (
            format!(
                "rvs_bgp {{\n    local_as 65005\n    router_id 198.18.1.1\n{n}    prefix 224.0.0.0/4\n}}\n"
            ),
            "k.conf:7:12: prefix '224.0.0.0/4' is not unicast",
        ),
        (
            format!(
                "rvs_bgp {{\n    local_as 65005\n    router_id 198.18.1.1\n    hold_time 2\n{n}}}\n"
            ),
            "k.conf:4:15: invalid hold_time '2'",
        ),
        (
            format!(
                "rvs_bgp {{\n    local_as 65005\n    router_id 198.18.1.1\n{n}    prefix 198.19.4.0/24 {{\n        vrrp_instance VI_9\n    }}\n}}\n"
            ),
            "k.conf:7:5: prefix 198.19.4.0/24: no vrrp_instance VI_9",
        ),
        (
            format!("rvs_bgp {{\n    local_as 65005\n    router_id 198.18.1.1\n{n}{n}}}\n"),
            "k.conf:7:5: neighbor 198.18.1.254 is given twice",
        ),
    ] {
        let e = parse_str("k.conf", &text).unwrap_err().to_string();
        assert!(e.starts_with(says), "{e}\nwanted {says}");
    }
}

const CLUSTER_VS: &str = "virtual_server 198.19.4.1 80 {\n    lb_kind DR\n    real_server 198.18.1.11 80 {\n    }\n}\n\
virtual_server 198.19.4.2 443 {\n    lb_kind DR\n    real_server 198.18.1.12 443 {\n    }\n}\n";

#[test]
fn rvs_cluster_block() {
    let text = format!(
        "{CLUSTER_VS}rvs_cluster {{\n    name idc1\n    listen 198.18.1.1:7240\n    key_file /etc/rvs/cluster.key\n    \
         period 1.5\n    capacity_per_weight 2\n    start_above 1.25\n    stop_at 1\n    remote_below 0.7\n    \
         peer idc2 {{\n        address 198.18.2.1:7240\n        director 198.18.2.2\n        weight 3\n        \
         services 198.19.4.1:80\n    }}\n    peer idc3 {{\n        address [2001:db8:3::1]:7240\n    }}\n}}\n"
    );
    let cfg = parse_str("k.conf", &text).unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let c = cfg.cluster.clone().unwrap();
    assert_eq!(c.name, "idc1");
    assert_eq!(c.listen, "198.18.1.1:7240".parse::<SocketAddr>().unwrap());
    assert_eq!(c.key_file, PathBuf::from("/etc/rvs/cluster.key"));
    assert_eq!(c.period, Duration::from_millis(1500));
    assert_eq!(
        (
            c.capacity_per_weight,
            c.start_above,
            c.stop_at,
            c.remote_below
        ),
        (2, 1250, 1000, 700)
    );
    assert_eq!(c.peers.len(), 2);
    let (p, q) = (&c.peers[0], &c.peers[1]);
    assert_eq!((p.name.as_str(), p.weight), ("idc2", 3));
    assert_eq!(p.director, "198.18.2.2".parse::<IpAddr>().unwrap());
    assert_eq!(p.services, vec!["198.19.4.1:80".parse().unwrap()]);
    // The director defaults to the peer's address, weight to 1, services to all.
    assert_eq!(q.director, "2001:db8:3::1".parse::<IpAddr>().unwrap());
    assert_eq!(q.weight, 1);
    let id = |last: u8, port: u16| ServiceId::Inet {
        proto: Protocol::Tcp,
        addr: [198, 19, 4, last].into(),
        port,
    };
    assert_eq!(forwarded_services(&cfg, p), vec![id(1, 80)]);
    assert_eq!(forwarded_services(&cfg, q), vec![id(1, 80), id(2, 443)]);
    // The seed's defaults.
    let cfg = parse_str(
        "k.conf",
        "rvs_cluster {\n    name a\n    listen 198.18.1.1:7240\n    key_file /k\n    peer b {\n        address 198.18.2.1:7240\n    }\n}\n",
    )
    .unwrap();
    let c = cfg.cluster.unwrap();
    assert_eq!(c.period, Duration::from_secs(120));
    assert_eq!(
        (
            c.capacity_per_weight,
            c.start_above,
            c.stop_at,
            c.remote_below
        ),
        (100, 1100, 1000, 700)
    );
}

#[test]
fn rvs_cluster_errors_say_where() {
    let head = "rvs_cluster {\n    name idc1\n    listen 198.18.1.1:7240\n    key_file /k\n";
    let peer = "    peer idc2 {\n        address 198.18.2.1:7240\n    }\n";
    for (text, says) in [
        (
            format!("rvs_cluster {{\n    listen 198.18.1.1:7240\n    key_file /k\n{peer}}}\n"),
            "k.conf:1:1: rvs_cluster needs 'name NAME'".to_owned(),
        ),
        (
            format!("{head}}}\n"),
            "k.conf:1:1: rvs_cluster needs 'peer NAME { ... }'".to_owned(),
        ),
        (
            format!("rvs_cluster {{\n    name idc1\n    listen 0.0.0.0:7240\n    key_file /k\n{peer}}}\n"),
            "k.conf:3:12: listen needs an address of this director".to_owned(),
        ),
        (
            format!("{head}    start_above 1.2.3\n{peer}}}\n"),
            "k.conf:5:17: invalid load '1.2.3'".to_owned(),
        ),
        (
            format!("{head}    stop_at 1.5\n{peer}}}\n"),
            "k.conf:1:1: rvs_cluster: stop_at (1.500) must be below start_above (1.100)".to_owned(),
        ),
        (
            format!("{head}    name bad/name\n{peer}}}\n"),
            "k.conf:5:10: invalid cluster name 'bad/name'".to_owned(),
        ),
        (
            format!("{head}    peer idc2 {{\n        director 198.18.2.1\n    }}\n}}\n"),
            "k.conf:5:5: peer 'idc2' needs 'address ADDR:PORT'".to_owned(),
        ),
        (
            format!("{head}{peer}{peer}}}\n"),
            "k.conf:8:5: peer 'idc2' has the name or address of peer 'idc2' (line 5)".to_owned(),
        ),
        (
            format!("{head}    peer idc2 {{\n        address 198.18.2.1:7240\n        weight 0\n    }}\n}}\n"),
            "k.conf:7:16: invalid weight '0'".to_owned(),
        ),
        (
            format!("{CLUSTER_VS}{head}    peer idc2 {{\n        address 198.18.2.1:7240\n        services 198.19.4.9:80\n    }}\n}}\n"),
            "k.conf:15:5: peer 'idc2': services names 198.19.4.9:80, which no virtual_server configures".to_owned(),
        ),
        (
            format!("{CLUSTER_VS}{head}    peer idc2 {{\n        address 198.18.2.1:7240\n        director 198.18.1.12\n    }}\n}}\n"),
            "k.conf:15:5: peer 'idc2': its director 198.18.1.12 is also a real server of a forwarded service (line 8)".to_owned(),
        ),
        (
            format!("{head}{peer}}}\n{head}{peer}}}\n"),
            "k.conf:9:1: rvs_cluster is given twice".to_owned(),
        ),
    ] {
        let e = parse_str("k.conf", &text).unwrap_err().to_string();
        assert!(e.starts_with(&says), "{e}\nnot\n{says}");
    }
    // A peer's director in a service it does not take is no clash.
    let text = format!(
        "{CLUSTER_VS}{head}    peer idc2 {{\n        address 198.18.2.1:7240\n        director 198.18.1.12\n        services 198.19.4.1:80\n    }}\n}}\n"
    );
    parse_str("k.conf", &text).unwrap();
}

#[test]
fn sloppy_tcp_is_a_service_flag() {
    let cfg = load_ok("ok/rvs_sloppy.conf");
    let s = desired_services(&cfg);
    assert!(s.iter().all(|s| s.config.sloppy_tcp()), "{s:?}");
}

#[test]
fn values_keepalived_ignores_leave_what_was_there() {
    let cfg = load_ok("ok/keepalived_degrades.conf");
    let s = desired_services(&cfg);
    assert_eq!(
        s.len(),
        3,
        "the virtual server without real servers is dropped"
    );
    assert_eq!(
        s[2].dests.len(),
        1,
        "the IPv4 real server of an IPv6 NAT service is skipped"
    );
    assert_eq!(s[0].config.scheduler, "wlc");
    assert_eq!(s[0].quorum, 1);
    assert_eq!(s[0].dests[0].config.fwd, FwdMethod::Masq);
    assert_eq!(
        s[1].dests[0].config.fwd,
        FwdMethod::Route,
        "lb_kind dr ignored"
    );
    assert_eq!(s[1].dests[0].checkers[0].retry, 2, "nb_get_retry ignored");
}

#[test]
fn smtp_host_blocks_are_one_checker_each() {
    let cfg = load_ok("ok/smtp_hosts.conf");
    let s = desired_services(&cfg);
    let checkers = &s[0].dests[0].checkers;
    let targets: Vec<SocketAddr> = checkers.iter().map(|c| c.target).collect();
    assert_eq!(targets, [sock("192.0.2.11:25"), sock("192.0.2.12:587")]);
    assert!(
        checkers
            .iter()
            .all(|c| c.connect_timeout == Duration::from_secs(5))
    );
    assert_eq!(
        checkers[1].bind.map(|b| b.ip()),
        Some("192.0.2.2".parse().unwrap())
    );
}

/// Every ok/ file's effective settings, as `rvsd --check-config --dump` prints them, are pinned
/// in the `.dump` beside it: a change in how a shape is read shows here.
#[test]
fn ok_corpus_dumps_are_the_expected_ones() {
    let all = files("ok");
    let mut compared = 0;
    for path in all {
        let want_path = path.with_extension("dump");
        let want = fs::read_to_string(&want_path)
            .unwrap_or_else(|e| panic!("{}: {e}", want_path.display()));
        let cfg = load(&path).unwrap();
        let got = super::dump::dump(&cfg, &desired_services(&cfg));
        assert_eq!(got, want, "{}", path.display());
        compared += 1;
    }
    assert!(compared >= 15, "{compared}");
}
