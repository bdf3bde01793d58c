"""What the operator's account holds before `terraform apply`: the module is given a VPC and subnets
(it creates neither), and AWS and Canonical publish the Ubuntu image the module looks up.

The plan is made once for every twin, so it names the network by fixed placeholder ids (the provider's
data sources answer for them from FIXTURES); the twin creates the network in moto and the deploy then
replaces each placeholder by moto's id (twin/terraform/resolve.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import boto3

from twin.account import ACCOUNT_ID, REGION

VPC_CIDR = "10.0.0.0/16"
VPC_PLACEHOLDER = "vpc-0f0e0d0c0b0a09080"
# placeholder id -> (availability zone, CIDR)
SUBNETS = {
    "subnet-0a0a0a0a0a0a0a0a0": (f"{REGION}a", "10.0.0.0/20"),
    "subnet-0b0b0b0b0b0b0b0b0": (f"{REGION}b", "10.0.16.0/20"),
    "subnet-0c0c0c0c0c0c0c0c0": (f"{REGION}c", "10.0.32.0/20"),
}
# terraform/main.tf reads the AMI id from Canonical's public parameter (data "aws_ssm_parameter").
UBUNTU_AMI_PARAMETER = (
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/{architecture}/hvm/ebs-gp3/ami-id"
)


def fixtures() -> dict[str, Any]:
    """What the provider's data sources answer for the placeholders (tools/terraform/provider.py)."""
    return {
        "account_id": ACCOUNT_ID,
        "data": {
            "aws_vpc": {VPC_PLACEHOLDER: {"cidr_block": VPC_CIDR}},
            "aws_subnet": {
                subnet: {"vpc_id": VPC_PLACEHOLDER, "availability_zone": zone, "cidr_block": cidr}
                for subnet, (zone, cidr) in SUBNETS.items()
            },
        },
    }


@dataclass(frozen=True)
class Network:
    vpc_id: str
    subnet_ids: list[str]

    def placeholders(self) -> dict[str, str]:
        """placeholder id -> moto's id."""
        return {VPC_PLACEHOLDER: self.vpc_id, **dict(zip(SUBNETS, self.subnet_ids, strict=True))}


def create_network(cluster: str, ec2: Any = None) -> Network:
    """A VPC with an internet gateway and one public subnet per zone, as an operator would bring it."""
    ec2 = ec2 or boto3.client("ec2", region_name=REGION)
    prefix = f"kcluster-{cluster}"

    def tagged(resource_type: str, name: str) -> list[dict[str, Any]]:
        tags = [{"Key": "kcluster:cluster", "Value": cluster}, {"Key": "Name", "Value": name}]
        return [{"ResourceType": resource_type, "Tags": tags}]

    vpc_id = ec2.create_vpc(CidrBlock=VPC_CIDR, TagSpecifications=tagged("vpc", prefix))["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    gateway = ec2.create_internet_gateway(TagSpecifications=tagged("internet-gateway", prefix))
    gateway_id = gateway["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id)
    route_table = ec2.create_route_table(VpcId=vpc_id, TagSpecifications=tagged("route-table", prefix))
    route_table_id = route_table["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=route_table_id, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway_id)
    subnet_ids = []
    for zone, cidr in SUBNETS.values():
        subnet_id = ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=cidr,
            AvailabilityZone=zone,
            TagSpecifications=tagged("subnet", f"{prefix}-{zone}"),
        )["Subnet"]["SubnetId"]
        ec2.modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": True})
        ec2.associate_route_table(RouteTableId=route_table_id, SubnetId=subnet_id)
        subnet_ids.append(subnet_id)
    return Network(vpc_id, subnet_ids)


def publish_public_ubuntu_ami(region: str, architecture: str = "arm64", ec2: Any = None) -> str:
    """What AWS and Canonical provide in every account: an Ubuntu 24.04 image and the public parameter
    naming it. moto knows neither (its bundled catalogue, which the twin does not load, has no such
    parameter), and the parameter path is reserved to AWS, so it goes into moto's SSM backend directly.
    The image is registered in the twin's account (Canonical's owner id cannot be set through the API)."""
    from moto.ssm.models import Parameter, ssm_backends

    ec2 = ec2 or boto3.client("ec2", region_name=region)
    image_id = ec2.register_image(
        Name=f"ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{architecture}-server-20260101",
        Architecture="arm64" if architecture == "arm64" else "x86_64",
        RootDeviceName="/dev/sda1",
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8, "VolumeType": "gp3"}}],
        VirtualizationType="hvm",
    )["ImageId"]
    backend = ssm_backends[ACCOUNT_ID][region]
    name = UBUNTU_AMI_PARAMETER.format(architecture=architecture)
    backend._parameters[name].append(
        Parameter(
            account_id=ACCOUNT_ID,
            name=name,
            value=image_id,
            parameter_type="String",
            description=None,
            allowed_pattern=None,
            keyid=None,
            last_modified_date=time.time(),
            version=1,
            data_type="aws:ec2:image",
        )
    )
    return image_id
