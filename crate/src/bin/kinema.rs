//! The native `kinema` command: the same model code as the browser, on Vulkan/Metal or the CPU.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kinema::{compute, probe};

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

fn run(cli: Cli) -> Result<(), kinema::KinemaError> {
    match cli.command {
        Command::Probe { backend, repeat } => {
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
                    return Err(kinema::KinemaError::Compute(
                        "the device computed a wrong matmul result".into(),
                    ));
                }
            }
            Ok(())
        }
    }
}
