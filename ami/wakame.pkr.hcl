# The wakame AMI: Debian 12 with the wakame single executable, its systemd unit (enabled, not
# started), the default config and the balancer packages. Every instance of a cluster boots this
# one image; the leader launches new instances from the image its own node runs.
#
#   npm run build:sea                      # dist/wakame
#   cd ami && packer init . && packer build -var region=eu-west-1 .
#
# Packer 1.7 or later (plugins.pkr.hcl names the amazon plugin `packer init` installs).
#
# Needs AWS credentials allowed to run a temporary instance and create an image (Packer's
# amazon-ebs builder); nothing of the cluster's (no key, no token) goes into the image.

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "Region to build in (copy the AMI to others with ami_regions)."
}

variable "instance_type" {
  type        = string
  default     = "t3.small"
  description = "Instance type of the temporary build instance (x86_64: the binary is linux-x64)."
}

variable "binary" {
  type        = string
  default     = "../dist/wakame"
  description = "The single executable to install (npm run build:sea), relative to ami/."
}

variable "wakame_version" {
  type        = string
  default     = "0.1.0"
  description = "Goes into the AMI's name and tags."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet for the build instance (empty: the default VPC's)."
}

variable "ami_regions" {
  type        = list(string)
  default     = []
  description = "Other regions to copy the AMI to."
}

locals {
  # Image names must be unique in an account and region: the build time makes them so.
  stamp = formatdate("YYYYMMDD-hhmmss", timestamp())
}

source "amazon-ebs" "wakame" {
  region        = var.region
  instance_type = var.instance_type
  subnet_id     = var.subnet_id
  ami_name      = "wakame-${var.wakame_version}-debian-12-amd64-${local.stamp}"
  ami_regions   = var.ami_regions
  ssh_username  = "admin"

  # Debian's own images: the newest Debian 12 (bookworm) for x86_64, published by Debian's account.
  source_ami_filter {
    filters = {
      name                = "debian-12-amd64-*"
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = ["136693071363"]
    most_recent = true
  }

  # The build instance, like every wakame node, answers IMDSv2 only.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  # Instances launched from the AMI default to IMDSv2 only as well.
  imds_support = "v2.0"

  tags = {
    Name             = "wakame ${var.wakame_version}"
    "wakame:version" = var.wakame_version
    "wakame:base"    = "{{ .SourceAMIName }}"
  }
}

build {
  sources = ["source.amazon-ebs.wakame"]

  provisioner "shell" {
    inline = ["mkdir -p /tmp/wakame-ami"]
  }

  provisioner "file" {
    source      = var.binary
    destination = "/tmp/wakame-ami/wakame"
  }

  provisioner "file" {
    sources     = ["install.sh", "wakame.service", "agent.yaml", "wakame-profile.sh"]
    destination = "/tmp/wakame-ami/"
  }

  provisioner "shell" {
    inline = [
      "sudo sh /tmp/wakame-ami/install.sh --binary /tmp/wakame-ami/wakame",
      # Nothing of this build instance may be in the image: no wakame state (a node identity baked
      # in would be every instance's), no cloud-init run record (each instance runs its own boot).
      "sudo rm -rf /tmp/wakame-ami /var/lib/wakame/*",
      "sudo cloud-init clean --logs",
    ]
  }
}
