//! Bulk transfers: intact streams both ways over both families, and the client's checks against
//! servers that corrupt, cut or pad the stream. Needs root.

use std::{
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, TcpListener, TcpStream},
    thread::{self, JoinHandle},
};

use rvs_testbed::{
    DrCluster, Netns,
    bulk::{Fnv1a64, Pattern},
    client,
};

const PORT: u16 = 8080;
const MB: u64 = 1_000_000;

#[test]
fn twenty_megabytes_go_both_ways_intact_over_both_families() {
    let cluster = DrCluster::builder()
        .real_servers(1)
        .ipv6(true)
        .build()
        .unwrap();
    let rs = &cluster.real_servers()[0];
    let server = rs.serve_tcp(PORT).unwrap();
    let client = cluster.client();
    let (v4, v6) = (IpAddr::V4(rs.ip()), IpAddr::V6(rs.ip6().unwrap()));
    assert_eq!(client.bulk_download(v4, PORT, 20 * MB).unwrap(), "rs0");
    assert_eq!(client.bulk_upload(v6, PORT, 20 * MB).unwrap(), "rs0");
    assert_eq!(client.bulk_download(v6, PORT, MB + 3).unwrap(), "rs0");
    assert_eq!(client.bulk_upload(v4, PORT, MB + 5).unwrap(), "rs0");
    assert_eq!(client.bulk_download(v4, PORT, 0).unwrap(), "rs0");
    // The line echo still works beside it.
    assert_eq!(client.tcp_request(v4, PORT).unwrap(), "rs0");
    assert_eq!(server.requests(), 6);
}

/// A server on loopback in `ns` that reads one request line and lets `answer` reply.
fn fake_server(
    ns: &Netns,
    answer: impl FnOnce(&str, &mut TcpStream) + Send + 'static,
) -> (u16, JoinHandle<()>) {
    let listener = ns
        .enter(|| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .unwrap()
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut line = Vec::new();
        let mut byte = [0];
        while byte != *b"\n" {
            stream.read_exact(&mut byte).unwrap();
            line.push(byte[0]);
        }
        let line = String::from_utf8(line).unwrap();
        answer(line.trim_end(), &mut stream);
    });
    (port, thread)
}

/// The length and seed of a `SEND`/`RECV` line.
fn len_and_seed(line: &str) -> (usize, u64) {
    let words: Vec<&str> = line.split(' ').collect();
    (words[1].parse().unwrap(), words[2].parse().unwrap())
}

/// Downloads `len` bytes from a server sending the pattern changed by `tamper`; returns the
/// client's error.
fn download_from_liar(len: u64, tamper: fn(&mut Vec<u8>)) -> String {
    let ns = Netns::new("bulk-liar").unwrap();
    let (port, server) = fake_server(&ns, move |line, stream| {
        let (len, seed) = len_and_seed(line);
        let mut data = vec![0; len];
        Pattern::new(seed).fill(&mut data);
        tamper(&mut data);
        // The client may hang up at the first wrong byte.
        let _ = stream
            .write_all(b"liar\n")
            .and_then(|()| stream.write_all(&data));
    });
    let err = client::bulk_download(&ns, Ipv4Addr::LOCALHOST.into(), port, len).unwrap_err();
    server.join().unwrap();
    format!("{err:#}")
}

#[test]
fn a_corrupted_download_names_the_first_bad_byte() {
    let err = download_from_liar(3 * MB, |data| data[2_345_678] ^= 0x40);
    assert!(err.contains("server liar sent a wrong stream"), "{err}");
    assert!(err.contains("byte 2345678 of 3000000"), "{err}");
}

#[test]
fn a_short_or_long_download_fails() {
    let err = download_from_liar(MB, |data| data.truncate(654_321));
    assert!(err.contains("ended after 654321 of 1000000 bytes"), "{err}");
    let err = download_from_liar(MB, |data| data.push(0));
    assert!(err.contains("1000001 bytes arrived where 1000000"), "{err}");
}

#[test]
fn an_upload_received_wrong_fails_with_the_servers_findings() {
    let ns = Netns::new("bulk-sink").unwrap();
    let (port, server) = fake_server(&ns, |line, stream| {
        let (len, _) = len_and_seed(line);
        let mut data = vec![0; len];
        stream.read_exact(&mut data).unwrap();
        // As if byte 4242 had been damaged on the way.
        data[4242] ^= 1;
        let mut hash = Fnv1a64::new();
        hash.update(&data);
        let reply = format!("sink {:016x} 4242\n", hash.value());
        stream.write_all(reply.as_bytes()).unwrap();
    });
    let err = client::bulk_upload(&ns, Ipv4Addr::LOCALHOST.into(), port, MB).unwrap_err();
    server.join().unwrap();
    let err = format!("{err:#}");
    assert!(err.contains("server sink got data hashing to"), "{err}");
    assert!(err.contains("first wrong byte was at offset 4242"), "{err}");
}
