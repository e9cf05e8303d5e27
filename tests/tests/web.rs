//! The pages end to end (issue 8): `groundtruth demo` serves the pages and
//! the API; `tests/web/e2e.mjs` drives Debian's headless Chromium through
//! them with playwright-core (sign in, filter the queue, a phone-farm case
//! and a dog-track case with their pictures, a verdict and its history, the
//! keyboard, the language switch, an inspector scoped to one city, the
//! metrics charts, the SQL console with CSV and errors). Screenshots of each
//! page land in `tests/web/artifacts/`.
//!
//! Needs node, `tests/web/node_modules` (`npm ci` in `tests/web`) and
//! `/usr/bin/chromium` (or `$CHROMIUM`): `tests/run.sh` installs all three.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{ensure, Context, Result};
use groundtruth_tests::{http, repo, ChildGuard};

/// The demo, serving, with the tokens it printed.
struct Demo {
    _child: ChildGuard,
    _dir: tempfile::TempDir,
    addr: std::net::SocketAddr,
    stdout: String,
}

impl Demo {
    fn start() -> Result<Demo> {
        let dir = tempfile::tempdir()?;
        let mut cmd = Command::new(groundtruth_tests::groundtruth_bin());
        cmd.arg("demo")
            .arg("--scenario")
            .arg(repo().join("pipelines/sim-small.toml"))
            .args(["--listen", "127.0.0.1:0", "--lake"])
            .arg(dir.path().join("lake"))
            .arg("--state")
            .arg(dir.path().join("state"))
            .args([
                "--set",
                "pgwire.listen=\"\"",
                "--set",
                "metrics.listen=\"\"",
                // Four eyes for one detector (e2e: a proposal and its sign-off).
                "--set",
                "store.four_eyes=[\"registration_farm\"]",
            ])
            .env("RUST_LOG", "warn")
            .env_remove("GROUNDTRUTH_CONFIG")
            .stdout(Stdio::piped());
        let mut child = ChildGuard::spawn(cmd)?;
        let reader = std::io::BufReader::new(child.stdout.take().context("demo stdout")?);
        let mut stdout = String::new();
        for line in reader.lines() {
            let line = line?;
            stdout.push_str(&line);
            stdout.push('\n');
            if line.starts_with("Ctrl-C stops") {
                break;
            }
        }
        let addr = stdout
            .split("pages: http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .with_context(|| format!("the demo printed no pages address:\n{stdout}"))?
            .parse()?;
        Ok(Demo {
            _child: child,
            _dir: dir,
            addr,
            stdout,
        })
    }

    /// The token printed on the line of `role`, and that line's region.
    fn token(&self, role: &str) -> Result<(String, String)> {
        let line = self
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(role) && l.contains("gt_"))
            .with_context(|| format!("no {role} token in\n{}", self.stdout))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let token = words
            .iter()
            .find(|w| w.starts_with("gt_"))
            .context("token")?
            .to_string();
        let region = words
            .get(1)
            .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
            .map(|w| w.to_string())
            .unwrap_or_default();
        Ok((token, region))
    }
}

fn web_dir() -> PathBuf {
    repo().join("tests/web")
}

#[test]
fn pages_are_served_with_a_strict_policy() -> Result<()> {
    let demo = Demo::start()?;
    let page = http::request(demo.addr, "GET", "/", None, None)?;
    ensure!(page.status == 200, "{}", page.text());
    ensure!(page.text().contains("/assets/app.js"), "{}", page.text());
    let csp = page
        .header("content-security-policy")
        .context("no CSP header")?;
    ensure!(csp.contains("script-src 'self'"), "{csp}");
    let js = http::request(demo.addr, "GET", "/assets/app.js", None, None)?;
    ensure!(js.status == 200, "{}", js.status);
    ensure!(
        js.header("content-type")
            .is_some_and(|t| t.starts_with("text/javascript")),
        "{:?}",
        js.header("content-type")
    );
    // The API still answers JSON 404s for unknown paths; the pages don't
    // swallow them.
    let missing = http::request(demo.addr, "GET", "/api/v1/nope", None, None)?;
    ensure!(missing.status == 404, "{}", missing.text());
    ensure!(missing.json()["error"]["code"] == "not_found");
    Ok(())
}

#[test]
fn inspectors_and_analysts_work_in_headless_chromium() -> Result<()> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    ensure!(
        std::path::Path::new(&chromium).exists(),
        "no Chromium at {chromium}: tests/run.sh installs Debian's chromium (or set $CHROMIUM)"
    );
    ensure!(
        web_dir().join("node_modules/playwright-core").exists(),
        "tests/web/node_modules is missing: run `npm ci` in tests/web (tests/run.sh does)"
    );
    let demo = Demo::start()?;
    let (admin, _) = demo.token("admin")?;
    let (inspector, city) = demo.token("inspector")?;
    let (analyst, _) = demo.token("analyst")?;
    ensure!(
        city.len() == 4,
        "the demo's inspector is not scoped to a city: {city:?}"
    );
    let artifacts = web_dir().join("artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    let out = Command::new("node")
        .arg(web_dir().join("e2e.mjs"))
        .current_dir(web_dir())
        .env("GT_URL", format!("http://{}", demo.addr))
        .env("GT_ADMIN", &admin)
        .env("GT_INSPECTOR", &inspector)
        .env("GT_ANALYST", &analyst)
        .env("GT_CITY", &city)
        .env("GT_ARTIFACTS", &artifacts)
        .env("CHROMIUM", &chromium)
        .output()
        .context("running node tests/web/e2e.mjs (is node installed?)")?;
    let say = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(out.status.success(), "the browser test failed\n{say}");
    let shots = std::fs::read_dir(&artifacts)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
        .count();
    ensure!(
        shots >= 13,
        "{shots} screenshots in {}\n{say}",
        artifacts.display()
    );
    Ok(())
}
