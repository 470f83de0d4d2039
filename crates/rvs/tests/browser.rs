//! The console in a real browser: Debian's headless Chromium, driven through chromedriver
//! (WebDriver, by the fantoccini crate), both run in the lab's client namespace and pinned to
//! the key of the certificate rvsd made. An admin logs in, watches the service's packets/s
//! chart move while the test sends traffic through the director, changes a weight (confirmed
//! in the page's dialog) and sees rvsadm agree, drains one, takes one out and puts it back, and
//! logs out; a viewer sees no controls and is
//! refused when the page tries a change. Screenshots go to the target directory.

mod common;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use base64::Engine;
use common::web::{PORT, WEB_PORT, web_lab, weight_of};
use fantoccini::{ClientBuilder, Locator};
use rcgen::PublicKeyData;
use serde_json::json;

const DRIVER_PORT: u16 = 9515;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn shots() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("monitor-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn console_in_chromium() {
    let (lab, users) = web_lab(&[]);
    let ns = lab.cluster.client().netns();
    // The base64 SHA-256 of the certificate's public key: Chromium trusts exactly that key.
    let key = std::fs::read_to_string(lab.dir.join("web-key.pem")).unwrap();
    let spki = rcgen::KeyPair::from_pem(&key)
        .unwrap()
        .subject_public_key_info();
    let pin = base64::engine::general_purpose::STANDARD
        .encode(ring::digest::digest(&ring::digest::SHA256, &spki));
    let profile = lab.dir.join("chromium-profile");
    let driver_log = lab.dir.join("chromedriver.log");
    let _driver = Killed(
        ns.spawn(
            Command::new("chromedriver")
                .arg(format!("--port={DRIVER_PORT}"))
                .arg(format!("--log-path={}", driver_log.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("chromedriver (scripts/install-deps installs chromium-driver)"),
    );
    let director = lab.cluster.director().ip();
    let base = format!("https://{director}:{WEB_PORT}");
    let rs0 = format!("{}:{PORT}", lab.rs_ip(0));
    let vip = lab.vip();
    let traffic = AtomicBool::new(false);
    let done = AtomicBool::new(false);

    std::thread::scope(|s| {
        // Traffic through the director while asked for, from the client's namespace.
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if traffic.load(Ordering::Relaxed) {
                    let _ = rvs_testbed::client::tcp_request(ns, vip, PORT);
                    std::thread::sleep(Duration::from_millis(4));
                } else {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Every socket of the WebDriver client is made on this thread, in the client's namespace.
        let result = ns
            .enter(|| {
                rt.block_on(async {
                    let mut caps = serde_json::Map::new();
                    caps.insert(
                        "goog:chromeOptions".into(),
                        json!({
                            "binary": "/usr/bin/chromium",
                            "args": [
                                "--headless=new", "--no-sandbox", "--disable-gpu",
                                "--disable-dev-shm-usage", "--window-size=1500,1100",
                                format!("--user-data-dir={}", profile.display()),
                                format!("--ignore-certificate-errors-spki-list={pin}"),
                            ],
                        }),
                    );
                    let start = Instant::now();
                    let c = loop {
                        let conn = hyper_util::client::legacy::connect::HttpConnector::new();
                        match ClientBuilder::new(conn)
                            .capabilities(caps.clone())
                            .connect(&format!("http://127.0.0.1:{DRIVER_PORT}"))
                            .await
                        {
                            Ok(c) => break c,
                            Err(e) if start.elapsed() < Duration::from_secs(20) => {
                                let _ = e;
                                tokio::time::sleep(Duration::from_millis(300)).await;
                            }
                            Err(e) => panic!("no WebDriver session: {e}"),
                        }
                    };
                    let run = async {
                        // Not logged in: the login page.
                        c.goto(&format!("{base}/")).await?;
                        c.wait().for_element(Locator::Id("login-form")).await?;
                        // A wrong password says so and stays on the page.
                        c.find(Locator::Id("username")).await?.send_keys("alice").await?;
                        c.find(Locator::Id("password")).await?.send_keys("wrong").await?;
                        c.find(Locator::Id("login")).await?.click().await?;
                        let err = c.find(Locator::Id("login-error")).await?;
                        wait_until("the login error", Duration::from_secs(10), || async {
                            err.text().await.is_ok_and(|t| t.contains("wrong"))
                        })
                        .await;
                        c.find(Locator::Id("password")).await?.clear().await?;
                        c.find(Locator::Id("password"))
                            .await?
                            .send_keys("alice's secret")
                            .await?;
                        c.find(Locator::Id("login")).await?.click().await?;
                        c.wait().for_element(Locator::Css("#services tbody tr")).await?;
                        let row = format!("#servers tr[data-id=\"{rs0}\"]");
                        c.wait().for_element(Locator::Css(&row)).await?;

                        // Traffic: the packets/s chart moves.
                        traffic.store(true, Ordering::Relaxed);
                        let chart_max = || async {
                            c.execute(
                                "return Number(document.getElementById('chart-pps').dataset.max || 0)",
                                vec![],
                            )
                            .await
                            .ok()
                            .and_then(|v| v.as_f64())
                            .unwrap_or(0.0)
                        };
                        wait_until("the packets/s chart to move", Duration::from_secs(20), || async {
                            chart_max().await > 0.0
                        })
                        .await;
                        // A few more seconds of the chart for the screenshot.
                        tokio::time::sleep(Duration::from_secs(8)).await;
                        std::fs::write(shots().join("console-admin.png"), c.screenshot().await?)
                            .unwrap();
                        traffic.store(false, Ordering::Relaxed);

                        // The admin changes rs0's weight, confirming in the dialog.
                        let input = c
                            .find(Locator::Css(&format!("{row} input.w")))
                            .await?;
                        input.send_keys("7").await?;
                        let set = c
                            .find(Locator::XPath(&format!(
                                "//tr[@data-id='{rs0}']//button[text()='Set']"
                            )))
                            .await?;
                        set.click().await?;
                        c.wait().for_element(Locator::Css("dialog[open]")).await?;
                        c.find(Locator::Id("confirm-yes")).await?.click().await?;
                        let msg = c.find(Locator::Id("message")).await?;
                        wait_until("the change to be reported", Duration::from_secs(10), || async {
                            msg.text().await.is_ok_and(|t| t.contains("weight 7"))
                        })
                        .await;
                        assert_eq!(weight_of(&lab, &rs0), Some(7), "rvsadm agrees");

                        // Drain rs1, take rs2 out and put it back, each confirmed.
                        let button = |rs: String, label: &'static str| {
                            let c = &c;
                            async move {
                                c.find(Locator::XPath(&format!(
                                    "//tr[@data-id='{rs}']//button[text()='{label}']"
                                )))
                                .await?
                                .click()
                                .await?;
                                c.wait().for_element(Locator::Css("dialog[open]")).await?;
                                c.find(Locator::Id("confirm-yes")).await?.click().await
                            }
                        };
                        let rs1 = format!("{}:{PORT}", lab.rs_ip(1));
                        let rs2 = format!("{}:{PORT}", lab.rs_ip(2));
                        button(rs1.clone(), "Drain").await?;
                        wait_until("rs1 drained", Duration::from_secs(10), || async {
                            weight_of(&lab, &rs1) == Some(0)
                        })
                        .await;
                        button(rs2.clone(), "Remove").await?;
                        wait_until("rs2 taken out", Duration::from_secs(10), || async {
                            weight_of(&lab, &rs2).is_none()
                        })
                        .await;
                        c.wait()
                            .for_element(Locator::Css("#removed button"))
                            .await?
                            .click()
                            .await?;
                        c.wait().for_element(Locator::Css("dialog[open]")).await?;
                        c.find(Locator::Id("confirm-yes")).await?.click().await?;
                        wait_until("rs2 back", Duration::from_secs(10), || async {
                            weight_of(&lab, &rs2) == Some(1)
                        })
                        .await;

                        // Log out: back to the login page, the session gone.
                        c.find(Locator::Id("logout")).await?.click().await?;
                        c.wait().for_element(Locator::Id("login-form")).await?;
                        let status = c
                            .execute_async(
                                "const done = arguments[0]; fetch('/api/v1/services').then(r => done(r.status));",
                                vec![],
                            )
                            .await?;
                        assert_eq!(status, json!(401));

                        // A viewer: no controls, and a change the page tries is refused.
                        c.find(Locator::Id("username")).await?.send_keys("bob").await?;
                        c.find(Locator::Id("password"))
                            .await?
                            .send_keys("bob's secret")
                            .await?;
                        c.find(Locator::Id("login")).await?.click().await?;
                        c.wait().for_element(Locator::Css(&row)).await?;
                        let set = c
                            .find(Locator::XPath(&format!(
                                "//tr[@data-id='{rs0}']//button[text()='Set']"
                            )))
                            .await?;
                        assert!(!set.is_displayed().await?, "a viewer sees no controls");
                        let refused = c
                            .execute_async(
                                "const [path, done] = arguments;
                                 fetch('/api/v1/session').then(r => r.json()).then(me =>
                                   fetch(path, {method: 'PUT', headers: {'Content-Type': 'application/json',
                                     'X-CSRF-Token': me.csrf_token}, body: JSON.stringify({weight: 1})}))
                                 .then(r => r.json().then(j => done([r.status, j.error])));",
                                vec![json!(format!(
                                    "/api/v1/services/tcp:{}/servers/{rs0}",
                                    lab.vip_port(PORT)
                                ))],
                            )
                            .await?;
                        assert_eq!(refused[0], json!(403), "{refused}");
                        assert!(refused[1].as_str().unwrap().contains("viewer"), "{refused}");
                        assert_eq!(weight_of(&lab, &rs0), Some(7), "unchanged");
                        std::fs::write(shots().join("console-viewer.png"), c.screenshot().await?)
                            .unwrap();
                        c.find(Locator::Id("logout")).await?.click().await?;
                        c.wait().for_element(Locator::Id("login-form")).await?;
                        Ok::<_, fantoccini::error::CmdError>(())
                    }
                    .await;
                    let _ = c.close().await;
                    run
                })
            })
            .unwrap();
        done.store(true, Ordering::Relaxed);
        result.unwrap_or_else(|e| {
            panic!(
                "browser: {e}\nchromedriver log:\n{}\nrvsd log:\n{}",
                std::fs::read_to_string(&driver_log).unwrap_or_default(),
                lab.rvsd_log()
            )
        });
    });
    let _ = std::fs::remove_file(users);
}
