"""The AWS side of the operator's command: a session from the standard credential chain, and the
cluster found by its configuration parameter (the one place Terraform writes what the cluster is)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import (
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
    TokenRetrievalError,
)
from pydantic import ValidationError

from kcluster import contract
from kcluster.config import ClusterConfig
from kcluster_cli.errors import OperatorError

_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}


def open_session(profile: str | None, region: str | None) -> boto3.Session:
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as error:
        raise OperatorError(f"{error}; list your profiles with `aws configure list-profiles`") from error
    if not session.region_name:
        raise OperatorError(
            "no AWS region: pass --region, set AWS_REGION, or set `region` in your AWS profile"
        )
    return session


@dataclass(frozen=True)
class Cluster:
    """One kcluster cluster as the operator sees it: its configuration and a session in its region."""

    name: str
    config: ClusterConfig
    session: boto3.Session

    @property
    def region(self) -> str:
        return str(self.session.region_name)

    def client(self, service: str) -> Any:
        return self.session.client(service)

    def group(self, role: str) -> str:
        return next(group.asg_name for group in self.config.node_groups if group.role == role)


def read_parameter(ssm: Any, name: str, *, missing: str, decrypt: bool = False) -> str:
    """The parameter's value; `missing` (what to do about it) when there is no such parameter."""
    with aws_errors(f"reading {name}"):
        try:
            return str(ssm.get_parameter(Name=name, WithDecryption=decrypt)["Parameter"]["Value"])
        except ClientError as error:
            if error.response["Error"]["Code"] != "ParameterNotFound":
                raise
            raise OperatorError(missing) from error


def find_cluster(session: boto3.Session, name: str) -> Cluster:
    parameter = contract.config_parameter_name(name)
    value = read_parameter(
        session.client("ssm"),
        parameter,
        missing=f"cluster {name!r} not found in {session.region_name}: there is no parameter {parameter}. "
        "Check --cluster and --region, or run `terraform apply` for it first",
    )
    try:
        config = ClusterConfig.model_validate_json(value)
    except ValidationError as error:
        raise OperatorError(
            f"{parameter} is not a kcluster configuration this command understands: "
            f"{error.errors()[0]['msg']}"
        ) from error
    return Cluster(name=name, config=config, session=session)


@contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """Turn the AWS errors an operator can fix into an OperatorError saying how."""
    try:
        yield
    except (NoCredentialsError, TokenRetrievalError) as error:
        raise OperatorError(
            f"{doing}: no usable AWS credentials ({error}). Run `aws configure`, "
            "`aws sso login --profile NAME`, or pass --profile"
        ) from error
    except NoRegionError as error:
        raise OperatorError(f"{doing}: no AWS region; pass --region") from error
    except ClientError as error:
        code = error.response["Error"]["Code"]
        message = error.response["Error"].get("Message", "")
        if code in _EXPIRED:
            raise OperatorError(f"{doing}: your AWS credentials have expired; log in again") from error
        if code in _DENIED:
            raise OperatorError(
                f"{doing}: denied by AWS ({code}: {message}). Your identity needs this permission"
            ) from error
        raise OperatorError(f"{doing}: {code}: {message}") from error


def paginate(client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, [])
