//! `patchcore sweep`: a grid over config keys, run here (with resume), planned as one command
//! per run for any scheduler (`--plan`), or merged from finished runs (`--merge`).

use std::path::PathBuf;

use patchcore_core::{Error, Result};
use patchcore_eval::sweep::{
    EXPECTED_POINTS, PlotSpec, SweepOptions, SweepSpec, merge_planned, parse_seeds, plan,
    run_sweep, write_tables,
};
use patchcore_model::Config;

/// The command line of `patchcore sweep`.
#[derive(clap::Args)]
pub struct Args {
    /// Config file with a [sweep] section (docs/SWEEPS.md). Not needed with --merge.
    #[arg(long, required_unless_present = "merge")]
    pub config: Option<PathBuf>,
    /// Folder holding MVTec AD categories. Default: the synthetic demo set, generated under
    /// the output folder.
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Category to evaluate (repeatable). Default: every category under the data root.
    #[arg(long = "category")]
    pub categories: Vec<String>,
    /// The sweep folder: runs/<point>/ per run, sweep.md, sweep.html, sweep.csv (and
    /// plan.txt with --plan).
    #[arg(long, default_value = "sweep")]
    pub output: PathBuf,
    /// Seeds of every run (overrides the config's `seeds`): 0..5, 0..=4 or 0,1,2.
    #[arg(long)]
    pub seeds: Option<String>,
    /// Write one self-contained `patchcore evaluate` command per run to <output>/plan.txt
    /// (and print them) instead of running them.
    #[arg(long, conflicts_with = "merge")]
    pub plan: bool,
    /// Build the tables from the report.json files under these folders (run folders, or
    /// folders of run folders) instead of running anything.
    #[arg(long, num_args = 1.., value_name = "DIR")]
    pub merge: Vec<PathBuf>,
    /// With --merge: table what has finished even when planned points have no report (the
    /// table lists them); without it such a merge is an error naming them.
    #[arg(long, requires = "merge")]
    pub allow_partial: bool,
    /// With --merge: the swept key on the plot's horizontal axis (default: the first).
    #[arg(long)]
    pub plot_x: Option<String>,
    /// With --merge: the swept key with one line per value (default: the second).
    #[arg(long)]
    pub plot_series: Option<String>,
    /// With --merge: the plotted metric.
    #[arg(long, default_value = "image_auroc")]
    pub plot_metric: String,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs the command.
pub fn run(args: &Args) -> Result<()> {
    if !args.merge.is_empty() {
        let plot = PlotSpec {
            x: args.plot_x.clone(),
            series: args.plot_series.clone(),
            metric: args.plot_metric.clone(),
        };
        let table = merge_planned(&args.merge, &plot, args.allow_partial)?;
        write_tables(&table, &args.output)?;
        print!("{}", table.table().to_markdown());
        println!("tables: {}", tables_text(&args.output));
        return Ok(());
    }
    let config = args.config.clone().expect("required without --merge");
    let spec = SweepSpec::from_file(&config)?;
    let seeds = args.seeds.as_deref().map(parse_seeds).transpose()?;
    // The data root: as `evaluate` resolves it (the demo set when none is given).
    let base = Config::from_file(&config)?;
    let (data_root, categories) = crate::evaluate::data_of(
        &base,
        args.data_root.as_deref(),
        &args.categories,
        &args.output,
    )?;
    let opts = SweepOptions {
        config,
        data_root,
        categories,
        output: args.output.clone(),
        seeds,
        quiet: args.quiet,
    };
    if args.plan {
        let exe = std::env::current_exe().map_err(|e| {
            Error::External(format!("cannot find this program's path for the plan: {e}"))
        })?;
        let lines = plan(&spec, &opts, &exe.to_string_lossy())?;
        std::fs::create_dir_all(&opts.output).map_err(|e| Error::io(&opts.output, e))?;
        let path = opts.output.join("plan.txt");
        let mut text = lines.join("\n");
        text.push('\n');
        patchcore_core::io::write_atomic(&path, text.as_bytes())?;
        // The points --merge expects, beside their run folders.
        let runs = opts.output.join("runs");
        std::fs::create_dir_all(&runs).map_err(|e| Error::io(&runs, e))?;
        let ids: Vec<String> = spec.points().iter().map(|p| p.id()).collect();
        patchcore_core::io::write_atomic(
            &runs.join(EXPECTED_POINTS),
            format!("{}\n", ids.join("\n")).as_bytes(),
        )?;
        for l in &lines {
            println!("{l}");
        }
        let mut merge_cmd = format!(
            "{} sweep --merge {} --output {}",
            exe.to_string_lossy(),
            std::path::absolute(opts.output.join("runs"))
                .unwrap_or_else(|_| opts.output.join("runs"))
                .display(),
            std::path::absolute(&opts.output)
                .unwrap_or_else(|_| opts.output.clone())
                .display()
        );
        if let Some(x) = &spec.plot.x {
            merge_cmd.push_str(&format!(" --plot-x {x}"));
        }
        if let Some(s) = &spec.plot.series {
            merge_cmd.push_str(&format!(" --plot-series {s}"));
        }
        merge_cmd.push_str(&format!(" --plot-metric {}", spec.plot.metric));
        eprintln!(
            "{} runs written to {}; run them anywhere (e.g. `parallel -j 2 < {}`), then:\n{merge_cmd}",
            lines.len(),
            path.display(),
            path.display()
        );
        return Ok(());
    }
    let out = run_sweep(&spec, &opts)?;
    print!("{}", out.table.table().to_markdown());
    println!(
        "{} runs evaluated, {} resumed from finished reports; tables: {}",
        out.ran,
        out.resumed,
        tables_text(&opts.output)
    );
    Ok(())
}

fn tables_text(dir: &std::path::Path) -> String {
    ["sweep.md", "sweep.html", "sweep.csv"]
        .iter()
        .map(|f| dir.join(f).display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
