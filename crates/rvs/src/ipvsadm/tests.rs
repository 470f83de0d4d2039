//! End-to-end tests: whole command lines through parsing, checks and a model-backed rvsd.

use super::testing::{Harness, Outcome};
use crate::control::proto::Request;
use crate::model::{
    DestAddr, DestConfig, FwdMethod, Protocol, ServiceConfig, ServiceId, Timeouts, TunCsum,
    TunType, svc_flags,
};

fn tcp(addr: &str, port: u16) -> ServiceId {
    ServiceId::Inet {
        proto: Protocol::Tcp,
        addr: addr.parse().unwrap(),
        port,
    }
}

fn udp(addr: &str, port: u16) -> ServiceId {
    ServiceId::Inet {
        proto: Protocol::Udp,
        addr: addr.parse().unwrap(),
        port,
    }
}

fn rs(addr: &str, port: u16) -> DestAddr {
    DestAddr {
        addr: addr.parse().unwrap(),
        port,
    }
}

fn sched(name: &str) -> ServiceConfig {
    ServiceConfig::new(name, false)
}

/// Runs one command line on a fresh table and returns what it sent.
fn sent(args: &[&str]) -> Vec<Request> {
    let h = Harness::new();
    let o = h.run(args);
    assert!(o.err.is_empty() || o.code != 0, "{args:?}: {o:?}");
    h.take_log()
}

fn assert_outcome(o: &Outcome, code: i32, out: &str, err: &str) {
    assert_eq!((o.code, o.out.as_str(), o.err.as_str()), (code, out, err));
}

/// Every message class with its exit code, as ipvsadm 1.31 printed them (captured from the
/// reference build): `code args... => stderr` (`''` is an empty argument, `\n` a newline inside
/// the message). None of these reach rvsd.
const REFERENCE_ERRORS: &str = r"
255 foo => Try `ipvsadm -h' or 'ipvsadm --help' for more information.
255 --foo => Try `ipvsadm -h' or 'ipvsadm --help' for more information.
255 -V => Try `ipvsadm -h' or 'ipvsadm --help' for more information.
255 -L= => Try `ipvsadm -h' or 'ipvsadm --help' for more information.
255 --start-daemon => Try `ipvsadm -h' or 'ipvsadm --help' for more information.
255 -nL => Try `ipvsadm -h' or 'ipvsadm --help' for more information.
255 -n => Try `ipvsadm -h' or 'ipvsadm --help' for more information.
255 -t 1.1.1.1:80 => Try `ipvsadm -h' or 'ipvsadm --help' for more information.
255 -- -L => Try `ipvsadm -h' or 'ipvsadm --help' for more information.
2 -L -A => invalid option `-A'
2 -Lh => invalid option `-Lh'
2 -L -v => invalid option `-v'
2 -L --start-daemon master => invalid option `master'
255 -L --foo => --foo: unknown option
255 -Lq => -Lq: unknown option
255 -A -t => -t: missing argument
255 -A --tcp-service => --tcp-service: missing argument
255 -L --stats=1 => --stats=1: option does not take an argument
255 -L -n= => -n=: option does not take an argument
255 -Ln= => -Ln=: option does not take an argument
2 -A -t 1.2.3.4:80 -s rr -s wrr => multiple 'scheduler' options specified
2 -A -t 1.2.3.4:80 -f 3 => multiple 'service-address' options specified
2 -a -t 1.2.3.4:80 -r 1.1.1.1 -m -g => multiple 'forwarding-method' options specified
2 -L -n -n => multiple 'numeric' options specified
2 -A -t 1.2.3.4:80 -sp rr => unexpected argument rr
2 -A -t 1.2.3.4:80 -ps rr => invalid timeout value `s' specified
2 -A -t 1.2.3.4:80 -p 0 => invalid timeout value `0' specified
2 -A -t 1.2.3.4:80 -p 2678401 => invalid timeout value `2678401' specified
2 -A -t 1.2.3.4:80 -p=x => invalid timeout value `x' specified
2 --start-daemon foo => illegal start-daemon parameter specified
2 --stop-daemon foo => illegal start_daemon specified
2 -A => You need to supply the 'service-address' option for the 'add-service' command
2 -a -t 1.2.3.4:80 => You need to supply the 'real-server' option for the 'add-server' command
2 -L -s rr => Illegal 'scheduler' option with the 'list' command
2 -C -n => Illegal 'numeric' option with the 'flush' command
2 -R -n => Illegal 'numeric' option with the 'restore' command
2 -L -c -t 10.0.0.1:80 => The option 'service-address' conflicts with the 'connection' option in the 'list' command
2 -L --timeout --daemon => The option 'daemon' conflicts with the 'timeout' option in the 'list' command
2 -L -c --stats => options conflicts in the list command
2 -L --timeout --persistent-conn => options conflicts in the list command
2 -L --daemon --rate => options conflicts in the list command
2 -A -t 80 => illegal virtual server address[:port] specified
2 -A -t '' => illegal virtual server address[:port] specified
2 -A -t [::1] => illegal virtual server address[:port] specified
2 -A -t [::1]x80 => illegal virtual server address[:port] specified
2 -A -t 10.0.0.1: => illegal virtual server address[:port] specified
2 -A -t 10.0.0.1:65536 => illegal virtual server address[:port] specified
2 -A -t 10.0.0.1:nosuchservice => illegal virtual server address[:port] specified
2 -A -t 1.2.3.4:80 -f 0 => multiple 'service-address' options specified
2 -A -f 0 => invalid fwmark value `0' specified
2 -A -f 4294967296 => invalid fwmark value `4294967296' specified
2 -A -f -3 => invalid fwmark value `-3' specified
2 -A -f abc => invalid fwmark value `abc' specified
2 -A -f 12x => invalid fwmark value `12x' specified
2 -A -t 1.2.3.4:80 -M 1.2.3.4.5.6 => illegal virtual server persistent mask specified
2 -A -t [::1]:80 -M abc => illegal ipv6 netmask specified
2 -A -t [::1]:80 -M 129 => illegal ipv6 netmask specified
2 -A -t [::1]:80 -M 0 => illegal ipv6 netmask specified
2 -a -t 1.2.3.4:80 -r 80 => illegal real server address[:port] specified
2 -a -t 1.2.3.4:80 -r 1.1.1.1 -w 65536 => illegal weight specified
2 -a -t 1.2.3.4:80 -r 1.1.1.1 -w -1 => illegal weight specified
2 -a -t 1.2.3.4:80 -r 1.1.1.1 -w x => illegal weight specified
2 -a -t 1.2.3.4:80 -r 1.1.1.1 -x -1 => illegal u_threshold specified
2 -a -t 1.2.3.4:80 -r 1.1.1.1 -x 2147483648 => illegal u_threshold specified
2 -a -t 1.2.3.4:80 -r 1.1.1.1 -y 2147483648 => illegal l_threshold specified
2 --start-daemon master --syncid 256 => illegal syncid specified
2 --start-daemon master --mcast-port 0 => illegal mcast-port specified
2 --start-daemon master --mcast-ttl 256 => illegal mcast-ttl specified
2 --start-daemon master --sync-maxlen 65508 => illegal sync-maxlen specified
2 --start-daemon master --mcast-group 1.2.3.4 => invalid IPv4 mcast-group `1.2.3.4'
2 --start-daemon master --mcast-group ff02::1x => invalid IPv6 mcast-group `ff02::1x'
2 --start-daemon master --mcast-group 2001:db8::1 => invalid IPv6 mcast-group `2001:db8::1'
2 -a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-type foo => illegal tunnel type specified
2 -a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-port 0 => illegal tunnel port specified
2 -a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-port 65536 => illegal tunnel port specified
2 -A -t 1.2.3.4:80 -b foo => invalid scheduler flag `foo'
2 -A -t 1.2.3.4:80 -b sh-port => incompatible scheduler flag `sh-port'
2 -A -t 1.2.3.4:80 -s sh -b sh-port,mh-port => incompatible scheduler flag `mh-port'
2 -A -t 1.2.3.4:80 -s mh -b flag-1,bogus => invalid scheduler flag `bogus'
2 -A -t 1.2.3.4:80 -6 => -6 used before -f\n
255 -6 -L => Try `ipvsadm -h' or 'ipvsadm --help' for more information.
2 -L -6 => -6 used before -f\n
2 -A -f 1 -6 -t 1.1.1.1:80 => multiple 'service-address' options specified
2 --set 1 2 => --set option requires 3 timeout values
2 --set 1 2 3 4 => unexpected argument 4
2 --set 1 2 x => invalid timeout value `x' specified
255 --set -1 2 3 => -1: unknown option
2 --set 2678401 1 1 => invalid timeout value `2678401' specified
2 -A -t 1.2.3.4:0 => Zero port specified for non-persistent service
2 -A -t 1.2.3.4:80 -o => One-Packet Scheduling is only for UDP virtual services
2 -a -t 1.2.3.4:80 -r [::1]:80 -g => Different address family is allowed only for tunneling servers
2 -a -t 1.2.3.4:80 -r 1.1.1.1 -m --tun-type gue => Tunnel options conflict with forward method
2 -a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-type gue => You need to supply the 'tun-port' option for the 'gue' tunnel type
2 -a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-port 5 => Illegal 'tun-port' option with the 'ipip' tunnel type
2 -a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-type gue --tun-port 5 --tun-csum --tun-remcsum => The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type
2 -a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-type gre --tun-remcsum => Illegal 'tun-remcsum' option with the 'gre' tunnel type
2 -a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-nocsum => Illegal 'tun-nocsum' option with the 'ipip' tunnel type
2 -a -t 1.2.3.4:80 -r 1.1.1.1 -g --tun-info => Illegal 'tun-info' option with the 'add-server' command
2 -A -- -t 1.1.1.1:1 => unexpected argument -t
2 -L foo bar => unexpected argument foo
2 -L -t 1.2.3.4:80 -b foo => invalid scheduler flag `foo'
2 -Z -n => Illegal 'numeric' option with the 'zero' command
2 -D -t 1.2.3.4:80 -s rr => Illegal 'scheduler' option with the 'delete-service' command
2 -d -t 1.2.3.4:80 -r 1.1.1.1 -w 2 => Illegal 'weight' option with the 'delete-server' command
2 -S --nosort => Illegal 'nosort' option with the 'save' command
2 -e -t 1.2.3.4:80 -r 1.1.1.1 -x 5 -y 5 -s rr => Illegal 'scheduler' option with the 'edit-server' command
2 -L --sort --sort -n --nosort --nosort => multiple 'nosort' options specified
255 -A -t 1.2.3.4:80 --pe => --pe: missing argument
2 -R -R => invalid option `-R'
2 --set => --set option requires 3 timeout values
2 -C foo => unexpected argument foo
2 -A -t 1.2.3.4:80 -p -M 255.255.255.0 -M 1 => multiple 'netmask' options specified
2 -A -t 1.2.3.4:80 --weight=5 => Illegal 'weight' option with the 'add-service' command
2 -E => You need to supply the 'service-address' option for the 'edit-service' command
2 -e -t 1.2.3.4:80 -r 1.1.1.1 -m -i => multiple 'forwarding-method' options specified
2 -a -r 1.1.1.1:http -t 1.2.3.4:80 => illegal real server address[:port] specified
2 --start-daemon master --mcast-interface eth0 --mcast-interface eth1 => multiple 'mcast-interface' options specified
2 --stop-daemon master --mcast-interface eth0 => Illegal 'mcast-interface' option with the 'stop-daemon' command
2 -a -t 1.2.3.4:80 -r 1.1.1.1 -i --tun-type gre --tun-type gue => multiple 'tun-type' options specified
2 -A -f 1 -6 -M 255.255.255.0 => illegal ipv6 netmask specified
2 -L -X --exact => multiple 'exact' options specified
2 -lnc --stats => options conflicts in the list command
";

/// rvs's own options, refused with ipvsadm's messages as ipvsadm would refuse its own.
const EXTENSION_ERRORS: &str = "\
2 -a -t 1.2.3.4:80 -r 1.1.1.1 -g --sloppy-tcp => Illegal 'sloppy-tcp' option with the 'add-server' command
2 -A -t 1.2.3.4:80 --sloppy-tcp --sloppy-tcp => multiple 'sloppy-tcp' options specified
2 -L --sloppy-tcp => Illegal 'sloppy-tcp' option with the 'list' command
2 --drain -n => Illegal 'numeric' option with the 'drain' command
";

#[test]
fn messages_and_exit_codes_match_ipvsadm() {
    let cases: Vec<&str> = REFERENCE_ERRORS.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(cases.len(), 122);
    expect_errors(&cases);
}

#[test]
fn rvs_options_are_refused_in_ipvsadm_words() {
    expect_errors(&EXTENSION_ERRORS.lines().collect::<Vec<_>>());
}

/// Each `CODE ARGS => MESSAGE` case exits with CODE and MESSAGE and never reaches rvsd.
fn expect_errors(cases: &[&str]) {
    for &case in cases {
        let (command, message) = case.split_once(" => ").unwrap();
        let mut words = command.split(' ');
        let code: i32 = words.next().unwrap().parse().unwrap();
        let args: Vec<&str> = words.map(|w| if w == "''" { "" } else { w }).collect();
        let h = Harness::new();
        let o = h.run(&args);
        let err = format!("{}\n", message.replace("\\n", "\n"));
        let got = (o.code, o.out.as_str(), o.err.as_str());
        assert_eq!(got, (code, "", err.as_str()), "{case}");
        assert_eq!(h.take_log(), vec![], "{case}: reached rvsd");
    }
}

#[test]
fn service_commands_become_requests() {
    let add = |service, config| vec![Request::AddService { service, config }];
    assert_eq!(
        sent(&["-A", "-t", "10.0.0.1:80", "-s", "rr"]),
        add(tcp("10.0.0.1", 80), sched("rr"))
    );
    // No -s: wlc. Long options with `=`, names for hosts and ports.
    assert_eq!(
        sent(&["--add-service", "--tcp-service=web.example:https"]),
        add(tcp("192.0.2.80", 443), sched("wlc"))
    );
    assert_eq!(
        sent(&[
            "-A",
            "-u",
            "10.0.0.1:53",
            "-s",
            "sh",
            "-p",
            "-o",
            "-b",
            "sh-port"
        ]),
        add(
            udp("10.0.0.1", 53),
            ServiceConfig {
                flags: svc_flags::PERSISTENT | svc_flags::ONEPACKET | svc_flags::SCHED2,
                timeout: 360,
                ..sched("sh")
            }
        )
    );
    assert_eq!(
        sent(&["-A", "-t", "10.0.0.1:80", "-s", "mh", "--sloppy-tcp"]),
        add(
            tcp("10.0.0.1", 80),
            ServiceConfig {
                flags: svc_flags::SLOPPY_TCP,
                ..sched("mh")
            }
        )
    );
    assert_eq!(
        sent(&[
            "-A",
            "-t",
            "[2001:db8::1]:443",
            "-p60",
            "-M",
            "64",
            "--pe",
            "sip"
        ]),
        add(
            tcp("2001:db8::1", 443),
            ServiceConfig {
                flags: svc_flags::PERSISTENT,
                timeout: 60,
                netmask: 64,
                pe_name: Some("sip".into()),
                ..ServiceConfig::new("wlc", true)
            }
        )
    );
    // -M is read as IPv4 (any inet_aton form) until an IPv6 service is known; -6 resets it.
    assert_eq!(
        sent(&["-A", "-t", "10.0.0.1:0", "-p", "-M", "0x0ffffff"]),
        add(
            tcp("10.0.0.1", 0),
            ServiceConfig {
                flags: svc_flags::PERSISTENT,
                timeout: 360,
                netmask: 0x00ff_ffff,
                ..sched("wlc")
            }
        )
    );
    assert_eq!(
        sent(&["-A", "-f", "5", "-M", "255.255.255.0", "-6", "-s", "wrr"]),
        add(
            ServiceId::Fwmark {
                mark: 5,
                ipv6: true
            },
            ServiceConfig::new("wrr", true)
        )
    );
    assert_eq!(
        sent(&[
            "-A",
            "--sctp-service",
            "10.0.0.1:9",
            "-s",
            "0123456789abcdefgh"
        ]),
        add(
            ServiceId::Inet {
                proto: Protocol::Sctp,
                addr: "10.0.0.1".parse().unwrap(),
                port: 9
            },
            sched("0123456789abcde")
        )
    );
    // -b is checked against the final -s, wherever it is.
    assert_eq!(
        sent(&[
            "-A",
            "-t",
            "10.0.0.1:80",
            "-b",
            "flag-1,,mh-port",
            "-s",
            "mh"
        ]),
        add(
            tcp("10.0.0.1", 80),
            ServiceConfig {
                flags: svc_flags::SCHED1 | svc_flags::SCHED2,
                ..sched("mh")
            }
        )
    );
    // Edit sends a complete service: leaving out -s means wlc.
    assert_eq!(
        sent(&["-E", "-t", "10.0.0.1:80"]),
        vec![Request::EditService {
            service: tcp("10.0.0.1", 80),
            config: sched("wlc")
        }]
    );
    assert_eq!(
        sent(&["-D", "-t", "10.0.0.1:http"]),
        vec![Request::DeleteService {
            service: tcp("10.0.0.1", 80)
        }]
    );
    assert_eq!(sent(&["-C"]), vec![Request::Clear]);
    assert_eq!(sent(&["--clear"]), vec![Request::Clear]);
    assert_eq!(
        sent(&["--set", "10", "0", "+20"]),
        vec![Request::SetTimeouts {
            timeouts: Timeouts {
                tcp: 10,
                tcp_fin: 0,
                udp: 20
            }
        }]
    );
}

#[test]
fn zero_without_a_service_means_all() {
    assert_eq!(sent(&["-Z"]), vec![Request::Zero { service: None }]);
    assert_eq!(
        sent(&["-Z", "-t", "0.0.0.0:0"]),
        vec![Request::Zero { service: None }]
    );
    let h = Harness::new();
    h.run(&["-A", "-t", "10.0.0.1:80", "-s", "rr"]);
    h.take_log();
    assert_outcome(&h.run(&["-Z", "-t", "10.0.0.1:80"]), 0, "", "");
    assert_eq!(
        h.take_log(),
        vec![Request::Zero {
            service: Some(tcp("10.0.0.1", 80))
        }]
    );
}

#[test]
fn server_commands_become_requests() {
    let h = Harness::new();
    let o = h.run(&[
        "-a",
        "-t",
        "10.0.0.1:80",
        "-r",
        "192.168.1.10:8080",
        "-m",
        "-w",
        "3",
        "-x",
        "10",
        "-y",
        "5",
    ]);
    assert_eq!(o.code, 255, "no such service in the model");
    assert_eq!(
        h.take_log(),
        vec![Request::AddDest {
            service: tcp("10.0.0.1", 80),
            dest: rs("192.168.1.10", 8080),
            config: DestConfig {
                fwd: FwdMethod::Masq,
                weight: 3,
                u_threshold: 10,
                l_threshold: 5,
                ..DestConfig::default()
            },
        }]
    );
    // Direct routing keeps the service's port, whatever -r says.
    let add_dest = |args: &[&str]| match sent(args).pop() {
        Some(Request::AddDest { dest, config, .. }) => (dest, config),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        add_dest(&["-a", "-t", "10.0.0.1:22", "-r", "10.1.1.3:8080"]),
        (rs("10.1.1.3", 22), DestConfig::default())
    );
    assert_eq!(
        add_dest(&["-a", "-t", "10.0.0.1:22", "-r", "10.1.1.3"]).0,
        rs("10.1.1.3", 22)
    );
    // -r before -t: no service port yet, and masquerading does not force one.
    assert_eq!(
        add_dest(&["-a", "-r", "10.1.1.3", "-t", "10.0.0.1:22", "-m"]).0,
        rs("10.1.1.3", 0)
    );
    // fwmark services keep the given port.
    assert_eq!(
        add_dest(&["-a", "-f", "5", "-r", "10.1.1.3:8080", "-g"]).0,
        rs("10.1.1.3", 8080)
    );
    assert_eq!(
        add_dest(&[
            "-a",
            "-t",
            "[2001:db8::1]:80",
            "-r",
            "192.168.1.30",
            "-i",
            "--tun-type",
            "gue",
            "--tun-port",
            "6080",
            "--tun-remcsum"
        ]),
        (
            rs("192.168.1.30", 80),
            DestConfig {
                fwd: FwdMethod::Tunnel,
                tun_type: TunType::Gue,
                tun_port: 6080,
                tun_csum: TunCsum::RemCsum,
                ..DestConfig::default()
            }
        )
    );
    // Edit sends a complete server: no -w means weight 1 again.
    let edit = sent(&["-e", "-t", "10.0.0.1:80", "-r", "192.168.1.10"]);
    assert_eq!(
        edit,
        vec![Request::EditDest {
            service: tcp("10.0.0.1", 80),
            dest: rs("192.168.1.10", 80),
            config: DestConfig::default()
        }]
    );
    // Delete uses the port as given.
    assert_eq!(
        sent(&["-d", "-t", "10.0.0.1:80", "-r", "192.168.1.10:8080"]),
        vec![Request::DeleteDest {
            service: tcp("10.0.0.1", 80),
            dest: rs("192.168.1.10", 8080)
        }]
    );
}

#[test]
fn kernel_errors_use_ipvsadm_messages() {
    let h = Harness::new();
    assert_outcome(&h.run(&["-A", "-t", "10.0.0.1:80", "-s", "rr"]), 0, "", "");
    assert_outcome(
        &h.run(&["-A", "-t", "10.0.0.1:80", "-s", "rr"]),
        255,
        "",
        "Service already exists\n",
    );
    assert_outcome(
        &h.run(&["-A", "-t", "10.0.0.2:80", "-s", "nosuch"]),
        255,
        "",
        "Scheduler or persistence engine not found\n",
    );
    assert_outcome(
        &h.run(&["-E", "-t", "10.0.0.9:80", "-s", "rr"]),
        255,
        "",
        "No such service\n",
    );
    assert_outcome(
        &h.run(&["-D", "-t", "10.0.0.9:80"]),
        255,
        "",
        "No such service\n",
    );
    assert_outcome(
        &h.run(&["-Z", "-t", "10.0.0.9:80"]),
        255,
        "",
        "No such service\n",
    );
    assert_outcome(
        &h.run(&["-a", "-t", "10.0.0.9:80", "-r", "192.168.1.1"]),
        255,
        "",
        "Service not defined\n",
    );
    assert_outcome(
        &h.run(&["-a", "-t", "10.0.0.1:80", "-r", "192.168.1.1"]),
        0,
        "",
        "",
    );
    assert_outcome(
        &h.run(&["-a", "-t", "10.0.0.1:80", "-r", "192.168.1.1"]),
        255,
        "",
        "Destination already exists\n",
    );
    assert_outcome(
        &h.run(&["-e", "-t", "10.0.0.1:80", "-r", "192.168.1.2"]),
        255,
        "",
        "No such destination\n",
    );
    assert_outcome(
        &h.run(&["-d", "-t", "10.0.0.1:80", "-r", "192.168.1.2"]),
        255,
        "",
        "No such destination\n",
    );
    // No row for ERANGE: strerror, as ipvsadm prints for `-y` above `-x`.
    assert_outcome(
        &h.run(&["-a", "-t", "10.0.0.1:80", "-r", "192.168.1.3", "-y", "5"]),
        255,
        "",
        "Numerical result out of range\n",
    );
    // No SIP persistence engine: refused as by a kernel without ip_vs_pe_sip.
    assert_outcome(
        &h.run(&["-A", "-u", "10.0.0.7:5060", "-p", "--pe", "sip"]),
        255,
        "",
        "Scheduler or persistence engine not found\n",
    );
    // `-s none`: the kernel's service without a scheduler.
    assert_outcome(
        &h.run(&["-A", "-t", "10.0.0.7:80", "-s", "none"]),
        0,
        "",
        "",
    );
    let listing = h.run(&["-L", "-n", "-t", "10.0.0.7:80"]);
    assert!(
        listing.out.contains("TCP  10.0.0.7:80 none\n"),
        "{}",
        listing.out
    );
    // The kernel's address checks: any service address, only unicast real servers.
    assert_outcome(&h.run(&["-A", "-t", "0.0.0.0:80"]), 0, "", "");
    assert_outcome(&h.run(&["-A", "-u", "224.0.0.9:53"]), 0, "", "");
    assert_outcome(&h.run(&["-A", "-t", "[2001:db8::10]:80"]), 0, "", "");
    let not_unicast =
        "Invalid operation.  Possibly wrong module version, address not unicast, ...\n";
    for (svc, rs, how) in [
        ("0.0.0.0:80", "0.1.2.3", "-g"),
        ("0.0.0.0:80", "255.255.255.255", "-m"),
        ("0.0.0.0:80", "224.0.0.5", "-g"),
        ("[2001:db8::10]:80", "[fe80::1]:80", "-i"),
        ("[2001:db8::10]:80", "[::ffff:198.18.0.11]:80", "-g"),
        ("[2001:db8::10]:80", "[ff02::1]:80", "-g"),
    ] {
        let out = h.run(&["-a", "-t", svc, "-r", rs, how]);
        assert_outcome(&out, 255, "", not_unicast);
    }
    assert_outcome(
        &h.run(&["-a", "-t", "[2001:db8::10]:80", "-r", "[fec0::1]:80", "-g"]),
        0,
        "",
        "",
    );
    // What this rvs does not do yet is said in rvs's words, not in a misleading kernel message.
    assert_outcome(
        &h.run(&["-A", "--sctp-service", "10.0.0.9:80", "-s", "rr"]),
        255,
        "",
        "rvs: SCTP services not available in this version yet\n",
    );
    // Listing one missing service is a listing failure: exit 1.
    assert_outcome(
        &h.run(&["-L", "-t", "10.0.0.9:80"]),
        1,
        "",
        "No such service\n",
    );
    assert_outcome(
        &h.run(&["-L", "-t", "10.0.0.1"]),
        1,
        "",
        "No such service\n",
    );
}

#[test]
fn failed_listings_exit_1_after_the_banner() {
    let h = Harness::new();
    h.state.borrow_mut().fail_with = Some((libc::ENOMEM, String::new()));
    assert_outcome(
        &h.run(&["-Ln"]),
        1,
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Memory allocation problem\n",
    );
    assert_outcome(&h.run(&["-L", "--timeout"]), 1, "", "");
    assert_outcome(&h.run(&["-Sn"]), 1, "", "Memory allocation problem\n");
    // Flush does not record itself as libipvs's last function: only generic rows apply.
    h.state.borrow_mut().fail_with = Some((libc::EEXIST, String::new()));
    assert_outcome(&h.run(&["-C"]), 255, "", "File exists\n");
}

#[test]
fn init_failures_and_help_without_rvsd() {
    let mut h = Harness::new();
    h.refuse = Some(libc::ECONNREFUSED);
    assert_outcome(
        &h.run(&["-L"]),
        2,
        "",
        "Can't initialize ipvs: Connection refused\nAre you sure that IP Virtual Server is built in the kernel or as module?\n",
    );
    // ipvsadm initialises before parsing: even a bad command line gets this message.
    assert_eq!(h.run(&["-L", "-h"]).code, 2);
    assert_eq!(h.run(&["-Q"]).code, 2);
    h.refuse = Some(libc::ENOENT);
    assert!(
        h.run(&[])
            .err
            .starts_with("Can't initialize ipvs: No such file or directory\n")
    );
    let help = h.run(&["-h"]);
    assert_eq!(help.code, 0);
    assert!(help.out.starts_with(&format!(
        "rvsadm v{} (ipvsadm v1.31 compatible, IPVS v1.2.1)\nUsage:\n  ipvsadm -A|E",
        crate::VERSION
    )));
    assert_eq!(h.run(&["foo", "--help", "-x"]).out, help.out);
    assert_outcome(
        &h.run(&["-v"]),
        0,
        &format!(
            "rvsadm v{} (ipvsadm v1.31 compatible, IPVS v1.2.1)\n",
            crate::VERSION
        ),
        "",
    );
    assert_eq!(h.run(&["--version"]).code, 0);
}

fn populated() -> Harness {
    let h = Harness::new();
    for args in [
        &["-A", "-t", "10.0.0.1:80", "-s", "rr"][..],
        &["-a", "-t", "10.0.0.1:80", "-r", "192.168.1.12", "-w", "2"],
        &["-a", "-t", "10.0.0.1:80", "-r", "192.168.1.10", "-x", "9"],
        &["-A", "-t", "192.0.2.80:8080", "-s", "wrr"],
        &["-A", "-u", "10.0.0.1:53", "-s", "rr"],
    ] {
        assert_outcome(&h.run(args), 0, "", "");
    }
    h
}

#[test]
fn listings() {
    let h = populated();
    let numeric = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.0.2.80:8080 wrr
TCP  10.0.0.1:80 rr
  -> 192.168.1.10:80              Route   1      0          0         
  -> 192.168.1.12:80              Route   2      0          0         
UDP  10.0.0.1:53 rr
";
    assert_outcome(&h.run(&["-Ln"]), 0, numeric, "");
    assert_outcome(&h.run(&["-l", "--numeric", "--sort"]), 0, numeric, "");
    // No arguments: -L with names.
    let named = h.run(&[]);
    assert_eq!(named.code, 0);
    assert!(
        named.out.contains(
            "TCP  web.example:http-alt wrr\nTCP  10.0.0.1:http rr\n  -> 192.168.1.10:http"
        ),
        "{}",
        named.out
    );
    assert!(named.out.contains("UDP  10.0.0.1:domain rr\n"));
    // --nosort keeps rvsd's order (newest real server first).
    let nosort = h.run(&["-Ln", "--nosort"]).out;
    assert!(nosort.contains("TCP  10.0.0.1:80 rr\n  -> 192.168.1.10:80              Route   1      0          0         \n  -> 192.168.1.12:80"));
    assert!(nosort.find("10.0.0.1:80").unwrap() < nosort.find("192.0.2.80:8080").unwrap());
    // One service: no banner.
    assert_outcome(
        &h.run(&["-L", "-n", "-u", "10.0.0.1:domain"]),
        0,
        "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nUDP  10.0.0.1:53 rr\n",
        "",
    );
    assert_outcome(
        &h.run(&["-L", "-n", "--thresholds", "-t", "10.0.0.1:80"]),
        0,
        "\
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  10.0.0.1:80 rr
  -> 192.168.1.10:80              9          0          0          0         
  -> 192.168.1.12:80              0          0          0          0         
",
        "",
    );
    assert_outcome(
        &h.run(&["-S", "-n"]),
        0,
        "\
-A -t 192.0.2.80:8080 -s wrr
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 192.168.1.10:80 -g -w 1
-a -t 10.0.0.1:80 -r 192.168.1.12:80 -g -w 2
-A -u 10.0.0.1:53 -s rr
",
        "",
    );
    assert_outcome(&h.run(&["-L", "--daemon"]), 0, "", "");
}

#[test]
fn timeouts() {
    let h = Harness::new();
    assert_outcome(
        &h.run(&["-L", "--timeout"]),
        0,
        "Timeout (tcp tcpfin udp): 900 120 300\n",
        "",
    );
    assert_outcome(&h.run(&["--set", "10", "0", "20"]), 0, "", "");
    assert_outcome(
        &h.run(&["-L", "--timeout"]),
        0,
        "Timeout (tcp tcpfin udp): 10 120 20\n",
        "",
    );
}

#[test]
fn connections_and_counters() {
    let h = Harness::new();
    assert_eq!(h.run(&["-A", "-u", "10.0.0.1:53"]).code, 0);
    assert_eq!(
        h.run(&["-a", "-u", "10.0.0.1:53", "-r", "192.168.1.16:53"])
            .code,
        0
    );
    // A flow as the data plane records it, last seen 1.5 s ago: 299 s left of UDP's 300.
    let dest_id = h.state.borrow().director.model().services[0].dests[0].id;
    let words = |a: &str| crate::dataplane::ip_words(&a.parse().unwrap());
    let now = crate::daemon::expiry::monotonic_ns();
    h.state.borrow().maps.with(|t| {
        t.conns.push((
            rvs_common::conn::ConnKey {
                caddr: words("192.168.0.1"),
                vaddr: words("10.0.0.1"),
                cport: 5353u16.to_be(),
                vport: 53u16.to_be(),
                proto: rvs_common::IPPROTO_UDP,
                af: rvs_common::AF_INET,
                ..Default::default()
            },
            rvs_common::conn::Conn {
                dest_id,
                last_seen_ns: now - 1_500_000_000,
                state: rvs_common::tcp_state::UDP,
                ..Default::default()
            },
        ));
        t.counters = vec![3, 7];
    });
    let header = "IPVS connection entries\npro expire state       source             virtual            destination\n";
    assert_outcome(
        &h.run(&["-L", "-c", "-n"]),
        0,
        &format!(
            "{header}UDP 04:58  UDP         192.168.0.1:5353   10.0.0.1:53        192.168.1.16:53\n"
        ),
        "",
    );
    assert_outcome(
        &h.run(&["-Lc"]),
        0,
        &format!(
            "{header}UDP 04:58  UDP         192.168.0.1:5353   10.0.0.1:domain    192.168.1.16:domain\n"
        ),
        "",
    );
    let counters = h.run(&["--dataplane"]);
    assert_eq!(counters.code, 0);
    assert!(
        counters
            .out
            .starts_with("forwarded 3\npass_no_conn 7\npass_fragment 0\n"),
        "{}",
        counters.out
    );
    assert!(
        counters.out.ends_with("drop_embryonic 0\n"),
        "{}",
        counters.out
    );
    assert_outcome(
        &h.run(&["--dataplane", "-n"]),
        2,
        "",
        "Illegal 'numeric' option with the 'dataplane' command\n",
    );
    assert_outcome(
        &h.run(&["-L", "--dataplane"]),
        2,
        "",
        "invalid option `--dataplane'\n",
    );
    assert_outcome(
        &h.run(&["--vrrp"]),
        0,
        "No VRRP instance runs (rvsd's keepalived.conf has no vrrp_instance)\n",
        "",
    );
    assert_outcome(
        &h.run(&["--vrrp", "-n"]),
        2,
        "",
        "Illegal 'numeric' option with the 'vrrp' command\n",
    );
    assert_outcome(
        &h.run(&["--cluster"]),
        0,
        "No cluster balancing runs (rvsd's keepalived.conf has no rvs_cluster)\n",
        "",
    );
    assert_outcome(
        &h.run(&["--cluster", "-n"]),
        2,
        "",
        "Illegal 'numeric' option with the 'cluster' command\n",
    );
}

#[test]
fn sync_daemons_are_started_and_stopped_by_rvsd_with_ipvsadm_s_messages() {
    let h = Harness::new();
    h.state.borrow_mut().fail_with =
        Some((libc::EEXIST, "rvs: that sync daemon runs already".into()));
    assert_outcome(
        &h.run(&[
            "--start-daemon",
            "master",
            "--mcast-group",
            "224.0.0.81",
            "--syncid",
            "3",
        ]),
        255,
        "",
        "Daemon has already run\n",
    );
    h.state.borrow_mut().fail_with = Some((libc::ESRCH, "rvs: no such sync daemon runs".into()));
    assert_outcome(
        &h.run(&["--stop-daemon=backup"]),
        255,
        "",
        "No daemon is running\n",
    );
    assert_eq!(
        h.take_log(),
        vec![
            Request::StartDaemon {
                daemon: crate::daemon::sync::DaemonSpec {
                    backup: false,
                    interface: "eth0".into(),
                    syncid: 3,
                    maxlen: 0,
                    group: Some("224.0.0.81".parse().unwrap()),
                    port: 0,
                    ttl: 0,
                },
            },
            Request::StopDaemon { backup: true },
        ]
    );
    h.state.borrow_mut().fail_with = None;
    // No daemon runs here: -L --daemon lists none, as ipvsadm does.
    assert_outcome(&h.run(&["-L", "--daemon"]), 0, "", "");
    assert_outcome(&h.run(&["--sync"]), 0, "no sync daemon\n", "");
}

#[test]
fn restore() {
    let h = Harness::new();
    let add = "-A -t 10.0.0.1:80 -s rr\n";
    // The exit code is the last line's.
    assert_outcome(
        &h.run_stdin(&["-R"], &format!("{add}{add}")),
        255,
        "",
        "Service already exists\n",
    );
    assert_outcome(
        &h.run_stdin(&["-R"], &format!("{add}-A -t 10.0.0.2:80 -s rr\n")),
        0,
        "",
        "Service already exists\n",
    );
    assert_outcome(
        &h.run_stdin(&["--restore"], "-A -t 10.0.0.3:80 -s rr"),
        0,
        "",
        "",
    );
    // `ipvsadm` words are dropped, blank lines skipped, popt errors survived.
    assert_outcome(
        &h.run_stdin(
            &["-R"],
            "\n  \n-L --foo\nipvsadm -A ipvsadm -t 10.0.0.4:80 -s rr\n",
        ),
        0,
        "",
        "--foo: unknown option\n",
    );
    // fail() ends the restore at once: the next line does not run.
    assert_outcome(
        &h.run_stdin(
            &["-R"],
            "-A -t 10.0.0.5:80 -s rr # comment\n-A -t 10.0.0.6:80 -s rr\n",
        ),
        2,
        "",
        "unexpected argument #\n",
    );
    assert_outcome(
        &h.run_stdin(&["-R"], "# comment\n-A -t 10.0.0.6:80 -s rr\n"),
        255,
        "",
        "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n",
    );
    assert_outcome(
        &h.run_stdin(
            &["-R"],
            "-A -t 10.0.0.7:80 -s rr\n-R\n-A -t 10.0.0.8:80 -s rr\n",
        ),
        255,
        "",
        "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n",
    );
    // Listings print; -v ends everything with 0; a failed listing with 1.
    let o = h.run_stdin(
        &["-R"],
        "-L -n -t 10.0.0.7:80\n-v\n-A -t 10.0.0.9:80 -s rr\n",
    );
    assert_eq!(o.code, 0);
    assert_eq!(
        o.out,
        format!(
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\nTCP  10.0.0.7:80 rr\nrvsadm v{} (ipvsadm v1.31 compatible, IPVS v1.2.1)\n",
            crate::VERSION
        )
    );
    assert_outcome(
        &h.run_stdin(&["-R"], "-L -t 10.0.0.99:80\n-A -t 10.0.0.10:80 -s rr\n"),
        1,
        "",
        "No such service\n",
    );
    let saved = h.run(&["-Sn"]).out;
    let services: Vec<&str> = saved.lines().collect();
    assert_eq!(
        services,
        [
            "-A -t 10.0.0.1:80 -s rr",
            "-A -t 10.0.0.2:80 -s rr",
            "-A -t 10.0.0.3:80 -s rr",
            "-A -t 10.0.0.4:80 -s rr",
            "-A -t 10.0.0.7:80 -s rr",
        ]
    );
    // A saved table restores to the same table.
    let fresh = Harness::new();
    assert_outcome(&fresh.run_stdin(&["-R"], &saved), 0, "", "");
    assert_eq!(fresh.run(&["-Sn"]).out, saved);
}

#[test]
fn stale_function_picks_the_message_in_a_restore() {
    // libipvs's flush does not record itself, so its error message depends on the line before.
    let h = Harness::new();
    h.state.borrow_mut().fail_with = Some((libc::EEXIST, String::new()));
    let o = h.run_stdin(&["-R"], "-A -t 10.0.0.1:80 -s rr\n-C\n");
    assert_outcome(
        &o,
        255,
        "",
        "Service already exists\nService already exists\n",
    );
    assert_outcome(&h.run_stdin(&["-R"], "-C\n"), 255, "", "File exists\n");
}

#[test]
fn mark_rules_are_added_listed_saved_restored_and_deleted() {
    let h = Harness::new();
    assert_outcome(
        &h.run(&[
            "--add-mark",
            "-f",
            "1",
            "--match",
            "tcp:198.18.0.100:80-443",
        ]),
        0,
        "",
        "",
    );
    assert_outcome(
        &h.run(&["--add-mark", "-f", "2", "--match", "any:[2001:db8::]/64"]),
        0,
        "",
        "",
    );
    assert_outcome(
        &h.run(&[
            "--add-mark",
            "-f",
            "3",
            "--match",
            "tcp:198.18.0.100:80-443",
        ]),
        255,
        "",
        "a mark rule for tcp:198.18.0.100:80-443 exists\n",
    );
    assert_outcome(
        &h.run(&["--add-mark", "-f", "1", "--match", "icmp:198.18.0.1"]),
        2,
        "",
        "illegal match `icmp:198.18.0.1' specified: unknown protocol `icmp' (tcp, udp or any)\n",
    );
    assert_outcome(
        &h.run(&[
            "--add-mark",
            "-t",
            "198.18.0.1:80",
            "--match",
            "tcp:198.18.0.1",
        ]),
        2,
        "",
        "the mark commands take the mark as -f MARK\n",
    );
    assert_outcome(
        &h.run(&["--add-mark", "-f", "1"]),
        2,
        "",
        "You need to supply the 'match' option for the 'add-mark' command\n",
    );
    assert_outcome(
        &h.run(&["-A", "-t", "198.18.0.1:80", "--match", "tcp:198.18.0.1"]),
        2,
        "",
        "Illegal 'match' option with the 'add-service' command\n",
    );
    assert_outcome(
        &h.run(&["--list-marks"]),
        0,
        "Mark rules (first match wins)\nMark       Match\n1          tcp:198.18.0.100:80-443\n2          any:[2001:db8::]/64\n",
        "",
    );
    h.run(&["-A", "-f", "1", "-s", "rr"]);
    // -S saves what ipvsadm saves; --save-marks the rules, which -R reads back as well.
    let services = h.run(&["-S", "-n"]);
    assert_eq!(services.out, "-A -f 1 -s rr\n");
    let marks = h.run(&["--save-marks"]);
    assert_eq!(
        marks.out,
        "--add-mark -f 1 --match tcp:198.18.0.100:80-443\n--add-mark -f 2 --match any:[2001:db8::]/64\n"
    );
    let saved = format!("{}{}", services.out, marks.out);
    assert_outcome(&h.run(&["-C"]), 0, "", "");
    assert_outcome(
        &h.run(&["--list-marks"]),
        0,
        "Mark rules (first match wins)\nMark       Match\n",
        "",
    );
    assert_outcome(&h.run_stdin(&["-R"], &saved), 0, "", "");
    assert_eq!(h.run(&["-S", "-n"]).out, services.out);
    assert_eq!(h.run(&["--save-marks"]).out, marks.out);
    assert_outcome(
        &h.run(&["--del-mark", "-f", "2", "--match", "any:[2001:db8::]/64"]),
        0,
        "",
        "",
    );
    assert_outcome(
        &h.run(&["--del-mark", "-f", "2", "--match", "any:[2001:db8::]/64"]),
        255,
        "",
        "no mark rule any:[2001:db8::]/64 -> 2\n",
    );
}
