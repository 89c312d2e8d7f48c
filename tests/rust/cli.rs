//! The `kinema` command as a person uses it: a clip from the tiny fixture, and clear refusals
//! (non-zero exit, one readable line, no panic) for bad arguments and broken folders.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::tiny_dir;

fn kinema(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kinema"))
        .args(args)
        .output()
        .expect("the kinema binary runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kinema-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn assert_refused(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {stderr}");
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
}

fn generate_args<'a>(
    model: &'a str,
    out: &'a str,
    prompt: &'a str,
    seconds: &'a str,
) -> Vec<&'a str> {
    vec![
        "generate",
        "--model",
        model,
        "--prompt",
        prompt,
        "--seconds",
        seconds,
        "--seed",
        "3",
        "--steps",
        "2",
        "--out",
        out,
        "--backend",
        "cpu",
    ]
}

#[test]
fn generate_writes_a_y4m_clip() {
    let dir = scratch("ok");
    let out = dir.join("clip.y4m");
    let model = tiny_dir();
    let (m, o) = (model.to_str().unwrap(), out.to_str().unwrap());
    let png_dir = dir.join("png");
    let mut args = generate_args(m, o, "a red ball", "1");
    args.extend(["--png-dir", png_dir.to_str().unwrap()]);
    let result = kinema(&args);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(stdout.contains("wrote 16 frames"), "{stdout}");
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        !stderr.contains("did not read"),
        "a short prompt is read whole: {stderr}"
    );
    let bytes = std::fs::read(&out).unwrap();
    let header = b"YUV4MPEG2 W48 H32 F16:1 Ip A1:1 C444\n";
    assert_eq!(&bytes[..header.len()], header);
    assert_eq!(bytes.len(), header.len() + 16 * (6 + 3 * 48 * 32));
    assert_eq!(std::fs::read_dir(&png_dir).unwrap().count(), 16);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_prompt_longer_than_the_model_reads_is_named_not_silently_cut() {
    let dir = scratch("long");
    let out = dir.join("clip.y4m");
    let model = tiny_dir();
    let prompt = "a skier in a red outfit jumps off a ramp on a snowy mountain at sunset while \
                  snow falls and the camera follows her down the slope past the pine trees, \
                  painted in the style of van gogh";
    let result = kinema(&generate_args(
        model.to_str().unwrap(),
        out.to_str().unwrap(),
        prompt,
        "1",
    ));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    assert!(
        stderr.contains("the model reads the first 32 tokens")
            && stderr.contains("did not read \"trees, painted in the style of van gogh\""),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let dir = scratch("bad");
    let out = dir.join("clip.y4m");
    let model = tiny_dir();
    let (m, o) = (model.to_str().unwrap(), out.to_str().unwrap());
    assert_refused(
        &kinema(&generate_args(m, o, "  ", "1")),
        "the prompt is empty",
    );
    assert_refused(&kinema(&generate_args(m, o, "a cat", "0")), "--seconds");
    assert_refused(&kinema(&generate_args(m, o, "a cat", "99")), "--seconds");
    let missing = dir.join("no-such-model");
    assert_refused(
        &kinema(&generate_args(missing.to_str().unwrap(), o, "a cat", "1")),
        "does not exist",
    );
    std::fs::remove_dir_all(dir).unwrap();
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A scratch folder holding a copy of the tiny fixture model to alter: (folder, model).
fn scratch_model(name: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let model = dir.join("model");
    copy_folder(&tiny_dir(), &model);
    (dir, model)
}

#[test]
fn a_corrupted_shard_is_reported_by_name() {
    let (dir, model) = scratch_model("corrupt");
    let shard = model.join("dit-00.safetensors");
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&shard, bytes).unwrap();
    let out = dir.join("clip.y4m");
    let result = kinema(&generate_args(
        model.to_str().unwrap(),
        out.to_str().unwrap(),
        "a cat",
        "1",
    ));
    assert_refused(&result, "dit-00.safetensors` is corrupted");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_step_count_defaults_to_what_the_model_was_trained_for() {
    let (dir, model) = scratch_model("steps");
    let out = dir.join("clip.y4m");
    let (m, o) = (model.to_str().unwrap(), out.to_str().unwrap());
    let stdout_of = |extra: &[&str]| {
        let mut args = vec!["generate", "--model", m, "--prompt", "a cat"];
        args.extend(["--seconds", "1", "--out", o, "--backend", "cpu"]);
        args.extend_from_slice(extra);
        let result = kinema(&args);
        let stderr = String::from_utf8_lossy(&result.stderr).to_string();
        assert!(result.status.success(), "{stderr}");
        String::from_utf8_lossy(&result.stdout).to_string()
    };
    // the fixture names no sampler steps: the CLI's own default
    let stdout = stdout_of(&[]);
    assert!(
        stdout.contains("Euler steps per chunk: 2 (default)"),
        "{stdout}"
    );
    let manifest_path = model.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["training"] = serde_json::json!({"sampler_steps": 3});
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let stdout = stdout_of(&[]);
    let trained = "Euler steps per chunk: 3 (what the model was trained for)";
    assert!(stdout.contains(trained), "{stdout}");
    // an explicit --steps wins
    let stdout = stdout_of(&["--steps", "1"]);
    assert!(
        stdout.contains("Euler steps per chunk: 1 (--steps)"),
        "{stdout}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_manifest_notice_is_shown() {
    let (dir, model) = scratch_model("notice");
    let out = dir.join("clip.y4m");
    let (m, o) = (model.to_str().unwrap(), out.to_str().unwrap());
    let stderr_of = || {
        let result = kinema(&generate_args(m, o, "a cat", "1"));
        let stderr = String::from_utf8_lossy(&result.stderr).to_string();
        assert!(result.status.success(), "{stderr}");
        stderr
    };
    assert!(!stderr_of().contains("note:"), "the fixture has no notice");
    let manifest_path = model.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["notice"] = serde_json::json!("An early checkpoint: clips are blurry.");
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let stderr = stderr_of();
    assert!(
        stderr.contains("note: An early checkpoint: clips are blurry."),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn guidance_can_be_set_for_a_run() {
    let dir = scratch("guidance");
    let m = tiny_dir();
    let m = m.to_str().unwrap();
    let clip = |name: &str, extra: &[&str]| {
        let out = dir.join(name);
        let mut args = generate_args(m, out.to_str().unwrap(), "a cat", "1");
        args.extend_from_slice(extra);
        let result = kinema(&args);
        let stderr = String::from_utf8_lossy(&result.stderr).to_string();
        assert!(result.status.success(), "{stderr}");
        (std::fs::read(out).unwrap(), stderr)
    };
    let (plain, stderr) = clip("plain.y4m", &[]);
    assert!(
        !stderr.contains("guidance:"),
        "the fixture asks for none: {stderr}"
    );
    let (guided, stderr) = clip("guided.y4m", &["--guidance", "3"]);
    assert!(
        stderr.contains("guidance: 3 against the empty caption"),
        "{stderr}"
    );
    assert_ne!(plain, guided, "guidance changes the clip");
    // 1 is no guidance at all: the same clip as without the flag
    assert_eq!(plain, clip("one.y4m", &["--guidance", "1"]).0);
    let o = dir.join("bad.y4m");
    for bad in ["25", "-1", "NaN"] {
        let mut args = generate_args(m, o.to_str().unwrap(), "a cat", "1");
        args.extend(["--guidance", bad]);
        assert_refused(&kinema(&args), "--guidance");
    }
    assert!(!o.exists());
    std::fs::remove_dir_all(dir).unwrap();
}
