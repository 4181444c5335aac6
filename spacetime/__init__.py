"""Neural ODEs and space-time networks as optimal-control problems.

The public surface:

- models: :class:`NeuralODE`;
- the learning problem: :class:`Problem` (objective and exact discrete gradient);
- training: :func:`solve` returning a :class:`Result`;
- configurations and runs: :func:`train`, :func:`load_run`, :func:`load_config`;
- data: :func:`load_dataset` and the generators :func:`spheres`, :func:`xor`,
  :func:`rings`;
- checks: :func:`check_gradient`;
- threads: :func:`single_threaded_blas` (what :func:`solve` holds while it runs);
- numerical studies: :func:`convergence_study` (observed orders of the schemes);
  the large-time studies :func:`depth_study`, :func:`lambda_study`,
  :func:`rescaling_study`, :func:`turnpike_study` returning a :class:`Study`
  (:func:`load_study`, :func:`plot_study`; the turnpike warm start itself is
  :func:`turnpike_controls`), the diagnostic
  :func:`controllability` and the fits :func:`fit_line`, :func:`fit_power_law`,
  :func:`fit_decay`;
- figures and reports of run, study, convergence-study, sweep and simulation
  files: :func:`save_figures`, :func:`write_report`, the ``plot_*`` functions
  (each returns a matplotlib Figure), :func:`risk_along_t` and
  :func:`load_convergence`;
- forward simulation with prescribed controls: :func:`simulate`,
  :func:`run_simulation`, :func:`load_simulation`;
- registries: ``ACTIVATIONS``, ``FIELDS``, ``LOSSES``, ``SCHEMES``.
"""

__version__ = "0.1.0"

from ._config import defaults as default_config
from ._config import load_config, validate
from ._convergence import ConvergenceStudy, StageModel, convergence_study
from ._core import single_threaded_blas
from ._data import DATASETS, Dataset, load_dataset, rings, spheres, xor
from ._errors import (
    ConfigError,
    DataError,
    RunFileError,
    SpacetimeError,
    TrainingDiverged,
)
from ._fits import DecayFit, LineFit, fit_decay, fit_line, fit_power_law
from ._gradcheck import GradientCheck, check_gradient
from ._model import NeuralODE
from ._plot import (
    load_convergence,
    plot_control_norms,
    plot_convergence,
    plot_convergence_adjoint,
    plot_convergence_trained,
    plot_decision_regions,
    plot_history,
    plot_kernels,
    plot_risk_along_t,
    plot_simulation_controls,
    plot_simulation_kernels,
    plot_simulation_norms,
    plot_simulation_state,
    plot_simulation_trajectories,
    plot_simulation_widths,
    plot_state,
    plot_sweep,
    plot_sweep_status,
    plot_trajectories,
    plot_widths,
    risk_along_t,
    save_figures,
)
from ._problem import Problem
from ._registry import ACTIVATIONS, FIELDS, LOSSES, SCHEMES
from ._report import write_report
from ._run import Run, TrainedRun, build, load_run, train
from ._simulate import Simulation, load_simulation, run_simulation, simulate
from ._solve import History, Result, solve
from ._spacetime import SpaceTimeNetwork
from ._studies import (
    Controllability,
    Study,
    controllability,
    depth_study,
    lambda_study,
    load_study,
    plot_study,
    rescaling_study,
    turnpike_controls,
    turnpike_study,
)
from ._sweep import (
    CaseRecord,
    SweepPlan,
    SweepResult,
    load_sweep,
    plan_sweep,
    run_sweep,
)

__all__ = [
    "ACTIVATIONS",
    "DATASETS",
    "FIELDS",
    "LOSSES",
    "SCHEMES",
    "ConfigError",
    "DataError",
    "Dataset",
    "GradientCheck",
    "History",
    "NeuralODE",
    "Problem",
    "Result",
    "Run",
    "RunFileError",
    "SpacetimeError",
    "TrainedRun",
    "TrainingDiverged",
    "build",
    "check_gradient",
    "default_config",
    "load_config",
    "load_dataset",
    "load_run",
    "rings",
    "solve",
    "run_sweep",
    "plan_sweep",
    "load_sweep",
    "SweepResult",
    "SweepPlan",
    "CaseRecord",
    "spheres",
    "train",
    "validate",
    "xor",
    "plot_control_norms",
    "plot_decision_regions",
    "plot_history",
    "plot_kernels",
    "plot_risk_along_t",
    "plot_state",
    "plot_trajectories",
    "plot_widths",
    "risk_along_t",
    "save_figures",
    "write_report",
    "load_convergence",
    "plot_convergence",
    "plot_convergence_adjoint",
    "plot_convergence_trained",
    "plot_sweep",
    "plot_sweep_status",
    "plot_simulation_norms",
    "plot_simulation_trajectories",
    "plot_simulation_state",
    "plot_simulation_controls",
    "plot_simulation_widths",
    "plot_simulation_kernels",
    "SpaceTimeNetwork",
    "Simulation",
    "simulate",
    "run_simulation",
    "load_simulation",
    "ConvergenceStudy",
    "StageModel",
    "convergence_study",
    "Study",
    "depth_study",
    "lambda_study",
    "rescaling_study",
    "turnpike_study",
    "load_study",
    "plot_study",
    "Controllability",
    "controllability",
    "LineFit",
    "DecayFit",
    "fit_line",
    "fit_power_law",
    "fit_decay",
    "single_threaded_blas",
    "turnpike_controls",
]
