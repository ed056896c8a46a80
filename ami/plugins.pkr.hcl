# The amazon plugin that `packer init .` installs (Packer 1.7+). In a file of its own so that
# wakame.pkr.hcl alone can be syntax-checked by older Packers too (Debian 12 ships 1.6, which
# cannot fetch plugins and does not know this block): test/unit/ami.test.ts does that.
packer {
  required_version = ">= 1.7.0"
  required_plugins {
    amazon = {
      version = ">= 1.3.0"
      source  = "github.com/hashicorp/amazon"
    }
  }
}
