"""The model zoo benchmarked: from a folder of checkpoints to the papers' table, measured beside
the published figures (tools/benchmark_zoo.py).

For every config of the metafile (or those picked) whose checkpoint is in the folder, runs
tools/test.py (single process, torchrun through tools/dist_test.sh, or srun with mmengine's slurm
launcher) with ``--data-root``, reads the metrics it writes (``--metrics-out``) and the time per
test iteration mmengine logs, and writes one table, Markdown and JSON: config, checkpoint, metric,
measured, published (and where), delta, seconds per image. Progress is printed as it runs; a
config that fails (weights that do not load included) becomes a row with its error and no
figure, the run goes on, and the exit status is 1; a config without a checkpoint is listed as
skipped. Test data missing under the data root stops the benchmark before the first run, with
one message naming the paths and the configs that read them.
"""
import contextlib
import datetime
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmvit_plugin.apis.cli import parse_cfg_options
from mmvit_plugin.apis.config import load_config
from mmvit_plugin.apis.data_check import missing_data, missing_data_message
from .zoo import (DEFAULT_METAFILE, METRICS, REPO, TOOLS, Found, Release, Zoo, ZooModel,
                  find_checkpoints, format_number, load_or_exit, published_digits, select,
                  shown_path)

DEFAULT_OUT_DIR = Path('work_dirs') / 'benchmark_zoo'


@dataclass
class Launcher:
    """How tools/test.py runs: ``'none'`` (one process), ``'pytorch'`` (torchrun through
    tools/dist_test.sh, ``gpus`` processes) or ``'slurm'`` (srun; mmengine reads the task layout
    from the SLURM_* variables)."""
    kind: str = 'none'
    gpus: int = 8
    gpus_per_node: int = 8
    cpus_per_task: int = 5
    partition: Optional[str] = None
    srun_args: str = ''

    @property
    def world_size(self) -> int:
        return 1 if self.kind == 'none' else self.gpus


def evaluation_command(model: ZooModel, checkpoint: Path, run_dir: Path, data_root: Path,
                       tta: bool = False, cfg_options: Optional[List[str]] = None,
                       launcher: Launcher = Launcher()) -> List[str]:
    """tools/test.py for one config and checkpoint, under the chosen launcher."""
    options = ['--data-root', str(data_root), '--work-dir', str(run_dir),
               '--metrics-out', str(run_dir / 'metrics.json')]
    if tta:
        options.append('--tta')
    if cfg_options:
        options += ['--cfg-options', *cfg_options]
    config, ckpt = str(model.config), str(checkpoint)
    if launcher.kind == 'pytorch':  # torchrun (on CPU over gloo when there is no GPU)
        return ['bash', str(TOOLS / 'dist_test.sh'), config, ckpt, str(launcher.gpus), *options]
    if launcher.kind == 'slurm':  # srun; mmengine reads the task layout from SLURM_* variables
        per_node = min(launcher.gpus, launcher.gpus_per_node)
        return ['srun', '-p', launcher.partition, f'--job-name=zoo_{model.stem}',
                f'--gres=gpu:{per_node}', f'--ntasks={launcher.gpus}',
                f'--ntasks-per-node={per_node}', f'--cpus-per-task={launcher.cpus_per_task}',
                '--kill-on-bad-exit=1', *shlex.split(launcher.srun_args or ''), sys.executable,
                '-u', str(TOOLS / 'test.py'), config, ckpt, *options, '--launcher', 'slurm']
    return [sys.executable, str(TOOLS / 'test.py'), config, ckpt, *options]


def run_logged(command: List[str], log_file: Path, prefix: str) -> int:
    """Run ``command`` from the current directory (the configs' relative data paths and the
    user's relative paths mean what they mean here), all output into ``log_file``; the test loop's
    progress lines (mmengine's ``Iter(test) [i/n]``) are echoed with ``prefix``."""
    env = dict(os.environ, PYTHON=os.environ.get('PYTHON', sys.executable))
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(REPO), env.get('PYTHONPATH')]))
    with open(log_file, 'w') as log:
        log.write('$ ' + shlex.join(command) + '\n')
        log.flush()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env, errors='replace')
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if 'Iter(test)' in line:
                print(f'{prefix}{line.split(" - INFO - ")[-1].strip()}', flush=True)
        return proc.wait()


#: What torchrun adds to a failed worker's output: ``[rankN]:`` before each line of an uncaught
#: exception, then its own ChildFailedError, which names no cause.
_RANK_PREFIX = re.compile(r'^\[rank\d+\]:')
_LAUNCHER_ERROR = 'torch.distributed.elastic.multiprocessing.errors.ChildFailedError'


def error_message(log_file: Path) -> str:
    """The line that says what went wrong: the last ``error:`` line of our tools, else the last
    exception line (a worker's, not torchrun's summary of it), else the last line."""
    lines = [_RANK_PREFIX.sub('', line).strip()
             for line in log_file.read_text(errors='replace').splitlines()]
    lines = [line for line in lines if line and not line.startswith(_LAUNCHER_ERROR)]
    for pattern in (r'^error: ', r'^\w+(\.\w+)*(Error|Exception)\b', r'.'):
        hits = [line for line in lines if re.search(pattern, line)]
        if hits:
            return hits[-1][:500]
    return 'no output'


def seconds_per_image(run_dir: Path, world_size: int) -> Optional[float]:
    """Wall time per test image: mmengine's mean test iteration time (its JSON log of the run)
    over the images one iteration takes on all processes (batch size x processes)."""
    from mmengine.config import Config
    logs = sorted(run_dir.glob('*/*.json'))
    configs = sorted(run_dir.glob('*/vis_data/config.py'))
    if not logs or not configs:
        return None
    try:
        iteration = json.loads(logs[-1].read_text().strip().splitlines()[-1]).get('time')
        batch = Config.fromfile(str(configs[-1])).test_dataloader.get('batch_size', 1)
    except Exception as e:  # the timing is a by-product: its failure must not lose the metrics
        print(f'    (no time per image: {type(e).__name__}: {e})', flush=True)
        return None
    return None if iteration is None else iteration / (batch * world_size)


def metric_rows(model: ZooModel, metrics: Dict[str, Any], release: Optional[Release],
                tta: bool) -> List[Dict[str, Any]]:
    """One row per metric tools/test.py measured that the zoo publishes for this task, with the
    published figure it is compared with."""
    rows = []
    for metric in METRICS:
        if metric.tta != tta or metric.key not in metrics:
            continue
        measured = round(float(metrics[metric.key]) * metric.scale, 2)
        published = model.published(metric.label, release)
        value = published.metrics[metric.label] if published else None
        rows.append(dict(
            metric=metric.label, measured=measured, published=value,
            source=published.source if published else None,
            delta=None if value is None else round(measured - value, 2)))
    return rows


def check_test_data(models: Sequence[ZooModel], data_root: Path,
                    cfg_options: Optional[List[str]] = None) -> None:
    """Stop before the first run when the test data of ``models`` is not under --data-root: one
    message naming each missing path and the configs that read it, not one failed row each."""
    options = parse_cfg_options(cfg_options)
    missing: Dict[str, Dict[str, List[str]]] = {}  # path -> config entry -> config stems
    scopes, failing = [], 0
    for model in models:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # what --data-root moved, per config
                cfg = load_config(str(model.config), options, data_root=str(data_root))
            found = missing_data(cfg, ['test'])
        except (Exception, SystemExit):  # a config that does not load: its row will say why
            continue
        if found:
            failing += 1
            scopes.append(cfg.get('default_scope'))
        for path, entries in found.items():
            for entry in entries:
                missing.setdefault(path, {}).setdefault(entry, []).append(model.stem)
    if not missing:
        return
    listed = {path: [f'{entry} of {", ".join(stems)}' for entry, stems in entries.items()]
              for path, entries in missing.items()}
    hints = [] if failing == len(models) else [
        '--configs PATTERN picks the configs whose dataset is there (e.g. \'upernet_*\' for '
        'ADE20K, \'*coco*\' for COCO).']
    raise SystemExit(missing_data_message(
        f'the test data of {failing} of the {len(models)} config(s) with a checkpoint is not under '
        f'--data-root {data_root} (nothing was run); missing', listed, scopes, hints))


def benchmark(zoo: Zoo, data_root: Path, checkpoints: Path,
              configs: Optional[Sequence[str]] = None, tta: bool = False,
              cfg_options: Optional[List[str]] = None, launcher: Launcher = Launcher(),
              out_dir: Path = DEFAULT_OUT_DIR) -> Dict[str, Any]:
    """Test every selected config that has a checkpoint; write the table after each one."""
    models = select(zoo, configs)
    directory = Path(checkpoints)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    world_size = launcher.world_size
    report: Dict[str, Any] = dict(
        metafile=str(zoo.path), data_root=str(data_root), checkpoints=str(directory),
        test='multi-scale + flip (--tta)' if tta else 'single-scale',
        launcher=launcher.kind, processes=world_size,
        started=datetime.datetime.now().isoformat(timespec='seconds'), rows=[], skipped=[])
    jobs: List[Tuple[ZooModel, Found]] = []
    for model in models:
        found, notes, looked = find_checkpoints(model, directory)
        for note in notes:
            report['skipped'].append(dict(config=shown_path(model.config), reason=note))
        if not found and not notes:
            report['skipped'].append(dict(
                config=shown_path(model.config),
                reason=f'no checkpoint (looked for {", ".join(looked)})'))
        jobs += [(model, f) for f in found]
    check_test_data(list({model.name: model for model, _ in jobs}.values()), data_root,
                    cfg_options)
    print(f'{len(jobs)} run(s): {len(models)} config(s) selected, '
          f'{len(report["skipped"])} skipped (see {out_dir / "results.md"})', flush=True)
    write_report(report, zoo, out_dir)
    for index, (model, found) in enumerate(jobs, 1):
        tag = f'[{index}/{len(jobs)}] {model.name} ({found.path.name})'
        print(f'{tag}: testing', flush=True)
        run_dir = out_dir / 'runs' / f'{model.stem}__{found.path.stem}'
        shutil.rmtree(run_dir, ignore_errors=True)  # no metrics or logs of an earlier run
        run_dir.mkdir(parents=True)
        log_file = run_dir / 'test.log'
        start = time.monotonic()
        command = evaluation_command(model, found.path, run_dir, data_root, tta, cfg_options, launcher)
        code = run_logged(command, log_file, '    ')
        wall = round(time.monotonic() - start, 1)
        base = dict(config=shown_path(model.config), checkpoint=found.path.name,
                    checkpoint_kind=('released' if found.release else 'own'),
                    log=str(log_file), wall_s=wall)
        metrics_file = run_dir / 'metrics.json'
        if code != 0 or not metrics_file.is_file():
            error = error_message(log_file) if code != 0 else 'tools/test.py wrote no metrics'
            report['rows'].append(dict(base, status='error', error=error))
            print(f'{tag}: error (exit {code}, {wall} s): {error}\n    log: {log_file}', flush=True)
        else:
            metrics = json.loads(metrics_file.read_text())
            per_image = seconds_per_image(run_dir, world_size)
            rows = metric_rows(model, metrics, found.release, tta)
            if not rows:
                rows = [dict(metric=None, measured=None, published=None, source=None, delta=None,
                             error=f'none of the metrics {sorted(metrics)} is a zoo metric')]
            for row in rows:
                report['rows'].append(dict(base, status='ok' if row['metric'] else 'error',
                                           s_per_image=per_image, **row))
            shown = ', '.join(f'{r["metric"]} {r["measured"]}' + (
                f' (published {r["published"]}, delta {r["delta"]:+.2f})'
                if r['published'] is not None else '') for r in rows if r['metric'])
            print(f'{tag}: {shown} in {wall} s', flush=True)
        write_report(report, zoo, out_dir)
    report['finished'] = datetime.datetime.now().isoformat(timespec='seconds')
    write_report(report, zoo, out_dir)
    return report


def markdown_report(report: Dict[str, Any], zoo: Zoo) -> str:
    lines = ['# Model zoo benchmark', '',
             f'Data root `{report["data_root"]}`, checkpoints `{report["checkpoints"]}`, '
             f'test {report["test"]}, launcher {report["launcher"]} '
             f'({report["processes"]} process(es)), started {report["started"]}'
             + (f', finished {report["finished"]}' if report.get('finished') else ' (running)')
             + f'. Published figures: `{shown_path(zoo.path)}`; Δ = measured − published.', '',
             '| config | checkpoint | metric | measured | published | Δ | source | s / image |',
             '|---|---|---|---|---|---|---|---|']
    for row in report['rows']:
        if row['status'] == 'error':
            lines.append(f'| `{row["config"]}` | {row["checkpoint"]} | error | '
                         f'{_cell(row["error"])} (log: `{row["log"]}`) | | | | |')
            continue
        source = zoo.source_link(row['source']) if row['source'] else '–'
        lines.append(f'| `{row["config"]}` | {row["checkpoint"]} | {row["metric"]} | '
                     f'{format_number(row["measured"])} | '
                     f'{format_number(row["published"], digits=published_digits(row["published"]))} | '
                     f'{format_number(row["delta"], signed=True)} | {source} | '
                     f'{format_number(row["s_per_image"], digits=3)} |')
    if report['skipped']:
        lines += ['', 'Skipped:', '']
        lines += [f'- `{s["config"]}`: {s["reason"]}' for s in report['skipped']]
    return '\n'.join(lines) + '\n'


def _cell(text: str) -> str:
    return text.replace('|', '\\|').replace('\n', ' ')


def write_report(report: Dict[str, Any], zoo: Zoo, out_dir: Path) -> None:
    (out_dir / 'results.json').write_text(json.dumps(report, indent=1) + '\n')
    (out_dir / 'results.md').write_text(markdown_report(report, zoo))


def benchmark_zoo(metafile: Path = DEFAULT_METAFILE, data_root: Path = None,
                  checkpoints: Path = None, configs: Optional[Sequence[str]] = None,
                  tta: bool = False, cfg_options: Optional[List[str]] = None,
                  launcher: Launcher = Launcher(), out_dir: Path = DEFAULT_OUT_DIR) -> int:
    """Benchmark the metafile's configs (``configs``: globs; None: all) with the checkpoints in
    ``checkpoints``; 1 when a row is an error, else 0."""
    zoo = load_or_exit(metafile)
    report = benchmark(zoo, data_root, checkpoints, configs, tta, cfg_options, launcher, out_dir)
    out = Path(out_dir)
    errors = [r for r in report['rows'] if r['status'] == 'error']
    print(f'table: {out / "results.md"} (and results.json): {len(report["rows"])} row(s), '
          f'{len(errors)} error(s), {len(report["skipped"])} skipped', flush=True)
    return 1 if errors else 0
