"""What every part of the CR schema shares: the API names, the base model, common field types."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from ..units import BANDWIDTH_PATTERN, QUANTITY_PATTERN

GROUP = "videomodel.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "VideoModel"
PLURAL = "videomodels"
SINGULAR = "videomodel"
SHORT_NAMES = ("vidm",)

DEFAULT_IMAGE = "ghcr.io/videomodel/videomodel-server:0.1.0"
SERVER_PORT = 8000
"""The container port the server listens on; the Service port is configurable separately."""

NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
"""A DNS-1035 label: the VideoModel's name becomes a Service name and a label value."""
NAME_MAX = 58
"""63 (a DNS label, a label value) less the longest suffix added to it (``-plan``)."""

ByteQuantity = Annotated[int | str, Field(json_schema_extra={"x-vm-quantity": QUANTITY_PATTERN})]
Bandwidth = Annotated[int | str, Field(json_schema_extra={"x-vm-bandwidth": BANDWIDTH_PATTERN})]
DnsName = Annotated[str, StringConstraints(min_length=1, max_length=253)]
K8sName = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]


class SpecError(ValueError):
    """A CR that cannot be served as written: a message a user can act on."""


def cel(rule: str, message: str) -> JsonDict:
    return {"rule": rule, "message": message}


class Model(BaseModel):
    """Base of every CR section: camelCase aliases, unknown fields rejected, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
    )
