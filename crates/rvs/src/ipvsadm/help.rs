//! `-h` and `-v`: ipvsadm's usage text with the program name substituted, and rvs's version.

/// The version line (`-v`, and the first line of `-h`).
pub fn version() -> String {
    format!(
        "rvsadm v{} (ipvsadm v1.31 compatible, IPVS v{})\n",
        crate::VERSION,
        crate::IPVS_VERSION
    )
}

/// The forms of the Usage block, each printed after `  <program> `.
const USAGE_FORMS: &[&str] = &[
    "-A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]",
    "-D virtual-service",
    "-C",
    "-R",
    "-S [-n]",
    "-a|e virtual-service -r server-address [options]",
    "-d virtual-service -r server-address",
    "-L|l [virtual-service] [options]",
    "-Z [virtual-service]",
    "--set tcp tcpfin udp",
    "--start-daemon {master|backup} [daemon-options]",
    "--stop-daemon {master|backup}",
    "-h",
];

/// Everything after the Usage block, verbatim (ipvsadm's scheduler list included).
const OPTIONS_TEXT: &str = r#"Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values
  --start-daemon              start connection sync daemon
  --stop-daemon               stop connection sync daemon
  --help            -h        display this help message

virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]
  --sctp-service    service-address   service-address is host[:port]
  --fwmark-service|-f fwmark          fwmark is an integer greater than zero

Options:
  --ipv6         -6                   fwmark entry uses IPv6
  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh,
                                      the default scheduler is wlc.
  --pe            engine              alternate persistence engine may be sip,
                                      not set by default.
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --tun-type      type                one of ipip|gue|gre,
                                      the default tunnel type is ipip.
  --tun-port      port                tunnel destination port
  --tun-nocsum                        tunnel encapsulation without checksum
  --tun-csum                          tunnel encapsulation with checksum
  --tun-remcsum                       tunnel encapsulation with remote checksum
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --daemon                            output of daemon information
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --tun-info                          output of tunnel information
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --ops          -o                   one-packet scheduling
  --numeric      -n                   numeric output of addresses and ports
  --sched-flags  -b flags             scheduler flags (comma-separated)
Daemon Options:
  --syncid sid                        syncid for connection sync (default=255)
  --sync-maxlen length                Max sync message length (default=1472)
  --mcast-interface interface         multicast interface for connection sync
  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)
  --mcast-port port                   UDP port (default=8848)
  --mcast-ttl ttl                     Multicast TTL (default=1)
"#;

/// The whole help text for a program invoked as `program`.
pub fn usage(program: &str) -> String {
    let mut text = version();
    text.push_str("Usage:\n");
    for form in USAGE_FORMS {
        text.push_str(&format!("  {program} {form}\n"));
    }
    text.push('\n');
    text.push_str(OPTIONS_TEXT);
    text.push_str(RVS_TEXT);
    text
}

/// rvs's own commands, after ipvsadm's text.
const RVS_TEXT: &str = r#"rvs extensions:
  --dataplane                         print the data plane's counters
  --vrrp                              print each VRRP instance's state
  --sync                              print the sync daemon's counters and bulk sync
  --bgp                               print the BGP speaker's sessions and prefixes
  --cluster                           print cluster balancing's loads and decisions
  --l7                                print the L7 servers' rules, pools and counters
  --add-mark -f mark --match rule     mark packets for fwmark services; rule is
                                      tcp|udp|any:address[/len][:port[-port]],
                                      an IPv6 address in brackets
  --del-mark -f mark --match rule     delete a mark rule
  --list-marks                        list the mark rules, first match first
"#;
