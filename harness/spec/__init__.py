"""Suite specification: load + validate + expand.  suite.yaml -> SuiteSpec -> [RunSpec]."""

from harness.spec.errors import Loc, SpecError
from harness.spec.expand import expand, validate_config
from harness.spec.load import LoadedSuite, load_suite
from harness.spec.models import RunConfig, RunSpec, SuiteSpec

__all__ = ["Loc", "SpecError", "expand", "validate_config", "LoadedSuite", "load_suite", "RunConfig", "RunSpec", "SuiteSpec"]
