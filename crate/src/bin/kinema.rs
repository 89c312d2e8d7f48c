//! The native `kinema` command: the same model code as the browser, on Vulkan/Metal or the CPU.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::tensor::Device;
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use kinema::model::{KinemaModel, load_folder};
use kinema::pipeline::{
    CancelFlag, GenerateRequest, GenerationEvent, GenerationReport, MAX_SECONDS, NoiseSource,
};
use kinema::video::Y4mWriter;
use kinema::weights::MAX_GUIDANCE;
use kinema::{KinemaError, compute, probe};
use web_time::Instant;

/// Euler steps per chunk for a model whose manifest names none (an untrained preview folder).
const DEFAULT_STEPS: u32 = 2;

#[derive(Parser)]
#[command(
    name = "kinema",
    version,
    about = "Text-to-video with the Kinema model"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    /// wgpu: Vulkan, Metal or DX12, whichever the machine has.
    Wgpu,
    /// The pure-Rust CPU backend (slow, always available).
    Cpu,
}

#[derive(Subcommand)]
enum Command {
    /// Check the compute device: show the adapter and time a known-answer matmul.
    Probe {
        #[arg(long, value_enum, default_value_t = Backend::Wgpu)]
        backend: Backend,
        /// How many times to run the probe (the first includes shader compilation).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
        repeat: u32,
    },
    /// Make a clip from a prompt and write it as Y4M (and optionally PNG frames).
    Generate {
        /// The model folder (manifest.json, tokenizer.json, shards).
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        prompt: String,
        /// Length of the clip in seconds.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=MAX_SECONDS as i64))]
        seconds: u32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Euler steps per chunk [default: what the model was trained for (its manifest's
        /// training.sampler_steps), else 2].
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
        steps: Option<u32>,
        /// Output file (.y4m; play with `mpv` or convert with `ffmpeg -i out.y4m out.mp4`).
        #[arg(long)]
        out: PathBuf,
        /// Also write every frame as PNG into this folder.
        #[arg(long)]
        png_dir: Option<PathBuf>,
        /// Classifier-free guidance against the empty caption, 0 to 20 (1 = none) [default: the
        /// model's training.sampler_guidance, else none].
        #[arg(long, allow_negative_numbers = true)]
        guidance: Option<f32>,
        #[arg(long, value_enum, default_value_t = Backend::Wgpu)]
        backend: Backend,
    },
    /// Time every stage of generation and report frames per second.
    Bench {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value = "a red ball bouncing on the grass at sunset")]
        prompt: String,
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=MAX_SECONDS as i64))]
        seconds: u32,
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
        steps: u32,
        /// Timed runs after one warm-up run (the warm-up includes shader compilation).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
        repeat: u32,
        /// Classifier-free guidance against the empty caption, 0 to 20 (1 = none) [default: the
        /// model's training.sampler_guidance, else none].
        #[arg(long, allow_negative_numbers = true)]
        guidance: Option<f32>,
        #[arg(long, value_enum, default_value_t = Backend::Wgpu)]
        backend: Backend,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kinema: {err}");
            ExitCode::FAILURE
        }
    }
}

fn device_for(backend: Backend) -> Result<Device, KinemaError> {
    Ok(match backend {
        Backend::Wgpu => {
            let (device, info) = pollster::block_on(compute::init_gpu())?;
            eprintln!("device: {} ({})", info.adapter, info.backend);
            device
        }
        Backend::Cpu => {
            eprintln!("device: CPU (burn Flex)");
            compute::cpu_device()
        }
    })
}

fn load(model: &Path, device: &Device, guidance: Option<f32>) -> Result<KinemaModel, KinemaError> {
    if let Some(g) = guidance
        && !(0.0..=MAX_GUIDANCE).contains(&g)
    {
        return Err(KinemaError::InvalidRequest(format!(
            "--guidance {g}: give 0 to {MAX_GUIDANCE} (1 = none)"
        )));
    }
    let started = Instant::now();
    let mut model = load_folder(model, device)?;
    if guidance.is_some() {
        model.manifest.training.sampler_guidance = guidance;
    }
    eprintln!(
        "model: {} {}{} loaded in {:.0} ms",
        model.manifest.id,
        model.manifest.version,
        if model.manifest.trained {
            ""
        } else {
            " (untrained: expect noise)"
        },
        started.elapsed().as_secs_f64() * 1000.0
    );
    if let Some(notice) = &model.manifest.notice {
        eprintln!("note: {notice}");
    }
    if let Some(scale) = model.manifest.training.guidance() {
        eprintln!("guidance: {scale} against the empty caption (two DiT passes per step)");
    }
    Ok(model)
}

fn run(cli: Cli) -> Result<(), KinemaError> {
    match cli.command {
        Command::Probe { backend, repeat } => run_probe(backend, repeat),
        Command::Generate {
            model,
            prompt,
            seconds,
            seed,
            steps,
            out,
            png_dir,
            guidance,
            backend,
        } => {
            if prompt.trim().is_empty() {
                return Err(KinemaError::InvalidRequest("the prompt is empty".into()));
            }
            let device = device_for(backend)?;
            let model = load(&model, &device, guidance)?;
            let trained_for = model.manifest.training.sampler_steps;
            let (steps, source) = match (steps, trained_for) {
                (Some(n), _) => (n, "--steps"),
                (None, Some(n)) => (n as u32, "what the model was trained for"),
                (None, None) => (DEFAULT_STEPS, "default"),
            };
            println!("Euler steps per chunk: {steps} ({source})");
            generate(
                &model,
                prompt,
                seconds,
                seed,
                steps,
                &out,
                png_dir.as_deref(),
            )
        }
        Command::Bench {
            model,
            prompt,
            seconds,
            steps,
            repeat,
            guidance,
            backend,
        } => {
            let device = device_for(backend)?;
            let model = load(&model, &device, guidance)?;
            bench(&model, prompt, seconds, steps, repeat)
        }
    }
}

fn io_error(path: &Path, err: std::io::Error) -> KinemaError {
    KinemaError::InvalidRequest(format!("cannot write {}: {err}", path.display()))
}

fn generate(
    model: &KinemaModel,
    prompt: String,
    seconds: u32,
    seed: u64,
    steps: u32,
    out: &Path,
    png_dir: Option<&Path>,
) -> Result<(), KinemaError> {
    let video = model.manifest.architecture.video.clone();
    let request = GenerateRequest {
        prompt,
        chunks: model.chunks_for_seconds(seconds as usize),
        steps: steps as usize,
        noise: NoiseSource::Seed(seed),
    };
    model.validate(&request)?;
    let file = File::create(out).map_err(|e| io_error(out, e))?;
    let mut writer = Y4mWriter::new(BufWriter::new(file), video.width, video.height, video.fps)
        .map_err(|e| io_error(out, e))?;
    if let Some(dir) = png_dir {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }

    let bar = ProgressBar::new((request.chunks * request.steps) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} steps, chunk {msg} [{elapsed}]")
            .expect("valid template"),
    );
    // indicatif drops `println` when stderr is not a terminal; the timings must show anyway.
    let say = |line: String| {
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    };
    let mut write_error = None;
    let report =
        pollster::block_on(model.generate(
            &request,
            &CancelFlag::new(),
            &mut |event| match event {
                GenerationEvent::TextEncoded {
                    ms,
                    unread,
                    token_limit,
                } => {
                    say(format!("text: {ms:.1} ms"));
                    if let Some(unread) = unread {
                        say(format!(
                            "note: the model reads the first {token_limit} tokens of a prompt; \
                             it did not read \"{unread}\""
                        ));
                    }
                }
                GenerationEvent::Step { chunk, .. } => {
                    bar.set_message(format!("{}/{}", chunk + 1, request.chunks));
                    bar.inc(1);
                }
                GenerationEvent::Chunk(chunk) => {
                    let t = &chunk.timings;
                    let steps: Vec<String> = t
                        .denoise_steps_ms
                        .iter()
                        .map(|ms| format!("{ms:.1}"))
                        .collect();
                    say(format!(
                        "chunk {}: frames {}..{}, steps [{}] ms, decode {:.1} ms",
                        chunk.index,
                        chunk.first_frame,
                        chunk.first_frame + chunk.count,
                        steps.join(", "),
                        t.decode_ms
                    ));
                    for i in 0..chunk.count {
                        let rgb = chunk.frame_rgb8(i);
                        let mut result = writer.write_rgb8(&rgb).map_err(|e| io_error(out, e));
                        if let (Ok(()), Some(dir)) = (&result, png_dir) {
                            let path = dir.join(format!("frame-{:04}.png", chunk.first_frame + i));
                            result = write_png(&path, &rgb, chunk.width, chunk.height);
                        }
                        if let Err(err) = result {
                            write_error.get_or_insert(err);
                        }
                    }
                }
                GenerationEvent::CacheFilled { chunk, ms } => {
                    say(format!("chunk {chunk}: KV cache fill {ms:.1} ms"));
                }
            },
        ))?;
    bar.finish_and_clear();
    if let Some(err) = write_error {
        return Err(err);
    }
    writer.finish().map_err(|e| io_error(out, e))?;
    println!(
        "wrote {} frames ({}×{} @ {} fps) to {} in {:.2} s ({:.2} frames/s)",
        report.frames,
        video.width,
        video.height,
        video.fps,
        out.display(),
        report.total_ms / 1000.0,
        report.frames_per_second()
    );
    Ok(())
}

fn write_png(path: &Path, rgb: &[u8], width: usize, height: usize) -> Result<(), KinemaError> {
    let file = File::create(path).map_err(|e| io_error(path, e))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let result = encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(rgb));
    result.map_err(|e| KinemaError::InvalidRequest(format!("cannot write {}: {e}", path.display())))
}

fn bench(
    model: &KinemaModel,
    prompt: String,
    seconds: u32,
    steps: u32,
    repeat: u32,
) -> Result<(), KinemaError> {
    let request = GenerateRequest {
        prompt,
        chunks: model.chunks_for_seconds(seconds as usize),
        steps: steps as usize,
        noise: NoiseSource::Seed(0),
    };
    model.validate(&request)?;
    let run = || pollster::block_on(model.generate(&request, &CancelFlag::new(), &mut |_| {}));
    let warm = run()?;
    println!(
        "warm-up: {:.0} ms for {} frames (includes kernel compilation)",
        warm.total_ms, warm.frames
    );
    for i in 1..=repeat {
        let report = run()?;
        print_report(i, &report);
    }
    Ok(())
}

fn print_report(run: u32, r: &GenerationReport) {
    let steps: Vec<f64> = r
        .chunks
        .iter()
        .flat_map(|c| c.denoise_steps_ms.clone())
        .collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let decode: Vec<f64> = r.chunks.iter().map(|c| c.decode_ms).collect();
    let fill: Vec<f64> = r.chunks.iter().filter_map(|c| c.cache_fill_ms).collect();
    // The last chunk has no successor to fill the cache for, so a 1 s clip has no fill at all.
    let fill = if fill.is_empty() {
        "cache fill none (last chunk only)".to_owned()
    } else {
        format!("cache fill {:.1} ms (n={})", mean(&fill), fill.len())
    };
    println!(
        "run {run}: text {:.1} ms | denoise step {:.1} ms (n={}) | {fill} | decode {:.1} ms/chunk | total {:.0} ms | {} frames, {:.2} frames/s",
        r.text_ms,
        mean(&steps),
        steps.len(),
        mean(&decode),
        r.total_ms,
        r.frames,
        r.frames_per_second()
    );
}

fn run_probe(backend: Backend, repeat: u32) -> Result<(), KinemaError> {
    let device = match backend {
        Backend::Wgpu => {
            let (device, info) = pollster::block_on(compute::init_gpu())?;
            println!("adapter: {} ({})", info.adapter, info.backend);
            println!("shader-f16: {}", info.shader_f16);
            println!("maxBufferSize: {} bytes", info.max_buffer_size);
            println!(
                "maxStorageBufferBindingSize: {} bytes",
                info.max_storage_buffer_binding_size
            );
            device
        }
        Backend::Cpu => {
            println!("adapter: CPU (burn Flex)");
            compute::cpu_device()
        }
    };
    for run in 1..=repeat {
        let result = pollster::block_on(probe::run_probe(&device))?;
        let verdict = if result.is_correct() { "ok" } else { "WRONG" };
        println!(
            "probe {run}: {:.2} ms, sum {:.4} (expected {:.4}) {verdict}",
            result.millis, result.value, result.expected
        );
        if !result.is_correct() {
            return Err(KinemaError::Compute(
                "the device computed a wrong matmul result".into(),
            ));
        }
    }
    Ok(())
}
