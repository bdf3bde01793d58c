"""The local twin: kcluster's product code run against moto plus emulations of what moto lacks.

Development and demo only; never shipped in the Lambda layer. The layer's package is put on the
import path here the way Lambda puts a layer's content on it (/opt/python), so the twin reads the
same contract and config models the functions use.
"""

import sys
from pathlib import Path

_LAYER = str(Path(__file__).resolve().parents[1] / "layers" / "kcluster")
if _LAYER not in sys.path:
    sys.path.append(_LAYER)
