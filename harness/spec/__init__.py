"""Suite specification: find + load + validate + expand.  suite.yaml -> SuiteSpec -> [RunSpec]."""

from harness.spec.config import validate_config
from harness.spec.errors import Loc, SpecError
from harness.spec.expand import expand
from harness.spec.find import find_suite, load_and_expand
from harness.spec.load import LoadedSuite, load_suite
from harness.spec.models import RunConfig, RunSpec, SuiteSpec

__all__ = ["Loc", "SpecError", "expand", "find_suite", "load_and_expand", "validate_config", "LoadedSuite",
           "load_suite", "RunConfig", "RunSpec", "SuiteSpec"]
