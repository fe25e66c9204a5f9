"""Convenant definitions (data files) and the loader that turns them into validators."""

from schemas.convenant import Convenant, ConvenantError, Party
from schemas.convenant_file import load_convenant, load_convenants

__all__ = ["Convenant", "ConvenantError", "Party", "load_convenant", "load_convenants"]
