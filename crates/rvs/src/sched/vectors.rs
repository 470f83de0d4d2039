//! Hand-checked kernel vectors for the table and counting schedulers: tables and picks computed by
//! a faithful transcription of the current kernel's C (hash_32, hsiphash, the sh/dh/mh builders
//! and lookups, the lc family), cross-checked by an independent implementation.

use std::net::{IpAddr, Ipv4Addr};

use super::{candidate::Candidate, dh, fo, lc, mh, nq, ovf, sed, sh, twos, wlc};
use crate::model::{Dest, DestAddr, DestConfig};

/// Dests A, B, C = 192.168.1.1-3:80 in list order (A at the head), ids 0, 1, 2.
fn abc(weights: [i32; 3]) -> Vec<Dest> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Dest {
            addr: DestAddr {
                addr: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1 + i as u8)),
                port: 80,
            },
            config: DestConfig {
                weight: w,
                ..DestConfig::default()
            },
            id: i as u32,
            last_weight: w,
        })
        .collect()
}

fn letters(table: &[u32]) -> String {
    table.iter().map(|&id| (b'A' + id as u8) as char).collect()
}

fn src(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

#[test]
fn sh_table_and_picks() {
    let t = sh::table(&abc([1, 2, 3]));
    assert_eq!(&letters(&t)[..12], "ABBCCCABBCCC");
    assert_eq!(&letters(&t)[252..], "ABBC");
    let count = |id| t.iter().filter(|&&x| x == id).count();
    assert_eq!((count(0), count(1), count(2)), (43, 86, 127));
    assert_eq!(
        &letters(&sh::table(&abc([1, 0, 3])))[..16],
        "ABCCCABCCCABCCCA"
    );
    let big = sh::table(&abc([200, 100, 0])[..2]);
    assert!(big[..200].iter().all(|&x| x == 0) && big[200..].iter().all(|&x| x == 1));

    let all = |_| true;
    for (last, port, bucket, dest) in [
        (1, 0, 39, 'C'),
        (1, 12345, 134, 'B'),
        (2, 0, 137, 'C'),
        (2, 12345, 232, 'C'),
        (3, 0, 235, 'B'),
        (3, 12345, 74, 'B'),
        (4, 0, 77, 'C'),
        (4, 12345, 171, 'C'),
        (5, 0, 174, 'A'),
        (5, 12345, 13, 'B'),
    ] {
        assert_eq!(sh::bucket(&src(last), port), bucket, "10.0.0.{last}:{port}");
        let got = sh::pick(&t, &src(last), port, false, all).unwrap();
        assert_eq!((b'A' + got as u8) as char, dest, "10.0.0.{last}:{port}");
    }
    // C overloaded: without fallback its clients get nothing, with it they probe
    // (k + 2 * bucket) mod 256.
    let not_c = |id| id != 2;
    for (last, port, plain, fallback) in [
        (1, 0, None, 'A'),
        (1, 12345, Some('B'), 'B'),
        (2, 0, None, 'A'),
        (2, 12345, None, 'A'),
        (4, 0, None, 'A'),
        (4, 12345, None, 'B'),
        (5, 0, Some('A'), 'A'),
    ] {
        let as_char = |id: Option<u32>| id.map(|i| (b'A' + i as u8) as char);
        assert_eq!(as_char(sh::pick(&t, &src(last), port, false, not_c)), plain);
        assert_eq!(
            as_char(sh::pick(&t, &src(last), port, true, not_c)),
            Some(fallback)
        );
    }
}

#[test]
fn dh_table_and_picks() {
    let t = dh::table(&abc([1, 2, 3]));
    assert_eq!(&letters(&t)[..6], "ABCABC");
    assert_eq!(
        t,
        dh::table(&abc([7, 0, 1])),
        "weights do not change the table"
    );
    for (last, bucket, dest) in [
        (1, 39, 'A'),
        (2, 137, 'C'),
        (3, 235, 'B'),
        (4, 77, 'C'),
        (5, 174, 'A'),
    ] {
        assert_eq!(dh::bucket(&src(last)), bucket);
        assert_eq!((b'A' + t[bucket] as u8) as char, dest);
    }
}

fn poly31(t: &[u32]) -> u32 {
    t.iter()
        .fold(0u32, |ck, &id| ck.wrapping_mul(31).wrapping_add(id))
}

#[test]
fn mh_tables_match_the_kernel() {
    let t = mh::table(&abc([1, 1, 1]));
    assert_eq!(t.len(), 4093);
    assert_eq!(
        &letters(&t)[..64],
        "ABCACABABCACCBABACCCAABACBCCABACBCAACBCBAAABCCBAACBCABCBCBCCAABA"
    );
    assert_eq!(poly31(&t), 0x5b6f_ec40);
    let t123 = mh::table(&abc([1, 2, 3]));
    assert_eq!(
        &letters(&t123)[..64],
        "ABCCCCBABCCCCCABBCCCAABBCBCCACBCBCACCCCBABCBCCBCBCBCCCCBCBCCAABB"
    );
    assert_eq!(poly31(&t123), 0x1fab_f4de);

    // Quiesced by an edit (weight 0, last weight 1): the table does not change.
    let mut quiesced = abc([1, 1, 1]);
    quiesced[1].config.weight = 0;
    assert_eq!(mh::table(&quiesced), t);
    // Added with weight 0: no slots at all.
    let mut added0 = abc([1, 0, 1]);
    added0[1].last_weight = 0;
    let t0 = mh::table(&added0);
    assert_eq!(t0.iter().filter(|&&x| x == 1).count(), 0);
    // Large weights are scaled down: 1000 and 1 give turns 62 and 1.
    let big = mh::table(&abc([1000, 1, 0])[..2]);
    assert_eq!(big.iter().filter(|&&x| x == 0).count(), 4029);
}

#[test]
fn mh_picks_and_fallback() {
    let t = mh::table(&abc([1, 1, 1]));
    let all = |_| true;
    for (last, port, slot, dest) in [
        (1, 0, 3711, 'B'),
        (1, 12345, 490, 'B'),
        (2, 0, 1884, 'A'),
        (2, 12345, 1889, 'C'),
        (5, 0, 3620, 'C'),
        (8, 12345, 3971, 'B'),
        (10, 12345, 3082, 'C'),
    ] {
        assert_eq!(mh::slot(&src(last), port), slot);
        assert_eq!(
            (b'A' + mh::pick(&t, &src(last), port, false, all).unwrap() as u8) as char,
            dest
        );
    }
    let not_c = |id| id != 2;
    for (last, fallback) in [(5, 'B'), (8, 'B'), (9, 'B'), (1, 'B'), (6, 'A')] {
        assert_eq!(
            mh::pick(&t, &src(last), 0, false, not_c).is_none(),
            matches!(last, 5 | 8 | 9)
        );
        assert_eq!(
            (b'A' + mh::pick(&t, &src(last), 0, true, not_c).unwrap() as u8) as char,
            fallback
        );
    }
}

/// `name:w/act/inact[/OL]` lists from the vectors.
fn parse(s: &str) -> Vec<Candidate> {
    s.split_whitespace()
        .map(|d| {
            let (_, rest) = d.split_once(':').unwrap();
            let f: Vec<&str> = rest.split('/').collect();
            Candidate {
                weight: f[0].parse().unwrap(),
                active: f[1].parse().unwrap(),
                inactive: f[2].parse().unwrap(),
                overloaded: f.get(3) == Some(&"OL"),
            }
        })
        .collect()
}

#[test]
fn counting_schedulers_match_the_kernel() {
    let name = |i: Option<usize>| {
        i.map_or("NULL".to_owned(), |i| {
            ((b'A' + i as u8) as char).to_string()
        })
    };
    for (list, want) in [
        ("A:1/0/0 B:1/0/0 C:1/0/0", "A A A A A A"),
        ("A:1/1/0 B:2/1/0 C:3/1/0", "A C C C C C"),
        ("A:1/1/0 B:2/1/0 C:3/1/0/OL", "A B B B B B"),
        ("A:1/0/0 B:10/5/0", "A A B A B B"),
        ("A:1/0/10 B:1/0/5", "B B A A A A"),
        ("A:2/2/0 B:1/1/0", "B A A A A A"),
        ("A:0/0/0 B:1/3/0 C:1/2/0", "C C C C B NULL"),
        ("A:3/4/0 B:2/2/0 C:2/0/0", "C C C C A B"),
        ("A:5/9/0 B:5/0/0", "B B B B A B"),
        ("A:1/0/0/OL B:1/0/0/OL", "NULL NULL NULL NULL NULL NULL"),
        ("A:4/1/0 B:1/0/200", "B A A B A A"),
        ("A:1/2/3 B:3/5/1", "A B B B B NULL"),
    ] {
        let l = parse(list);
        let got = [
            lc::pick(&l),
            wlc::pick(&l),
            sed::pick(&l),
            nq::pick(&l),
            fo::pick(&l),
            ovf::pick(&l),
        ]
        .map(name)
        .join(" ");
        assert_eq!(got, want, "{list} (lc wlc sed nq fo ovf)");
    }
}

#[test]
fn twos_with_chosen_draws() {
    let l = parse("A:1/1/0 B:2/0/0 C:3/2/0");
    assert_eq!(twos::draw_range(&l), Some(7));
    for (r1, r2, want) in [
        (0, 0, 0),
        (1, 1, 0),
        (0, 6, 2),
        (2, 3, 1),
        (3, 2, 1),
        (6, 6, 2),
        (1, 4, 2),
        (4, 1, 2),
    ] {
        assert_eq!(twos::pick(&l, r1, r2), Some(want), "r1={r1} r2={r2}");
    }
}
