# Everything a developer or CI job needs, pinned by flake.lock:
#
#   nix develop                       # shell: Rust of rust-toolchain.toml, nextest, flyctl, compose, promtool, actionlint
#   nix build .#ampel-api .#ampel-worker
#
# Update the pins with `nix flake update` and commit flake.lock with the change.
{
  description = "Ampel ops: dev shell and the ampel-api / ampel-worker binaries";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";
    # Builds the exact toolchain rust-toolchain.toml names; nixpkgs' rustc lags behind it.
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    { nixpkgs, rust-overlay, ... }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forEachSystem =
        f:
        nixpkgs.lib.genAttrs systems (
          system:
          f (
            import nixpkgs {
              inherit system;
              overlays = [ rust-overlay.overlays.default ];
            }
          )
        );
      # One toolchain for the shell, the packages and `cargo` in CI: rust-toolchain.toml's.
      toolchainOf = pkgs: pkgs.rust-bin.fromRustupToolchainFile ./rust-toolchain.toml;
    in
    {
      devShells = forEachSystem (pkgs: {
        default = pkgs.mkShell {
          packages =
            [
              (toolchainOf pkgs)
              pkgs.cargo-nextest
              pkgs.flyctl # cargo xtask deploy fly
              pkgs.docker-compose # cargo xtask obs-up (with Docker or Podman's socket)
              pkgs.prometheus # promtool: checks observability/ rules
              pkgs.jq
              pkgs.actionlint # lints .github/workflows (.ci/lint.sh builds its own pinned copy)
              pkgs.git
            ]
            # Podman stands in for Docker where no Docker engine runs; it needs Linux.
            ++ pkgs.lib.optionals pkgs.stdenv.isLinux [ pkgs.podman ];
        };
      });

      packages = forEachSystem (
        pkgs:
        let
          toolchain = toolchainOf pkgs;
          rustPlatform = pkgs.makeRustPlatform {
            cargo = toolchain;
            rustc = toolchain;
          };
          binary =
            name:
            rustPlatform.buildRustPackage {
              pname = name;
              version = "0.1.0";
              src = ./.;
              cargoLock.lockFile = ./Cargo.lock;
              cargoBuildFlags = [
                "--package"
                name
              ];
              # The tests need PostgreSQL and Redis: `cargo xtask test` runs them.
              doCheck = false;
            };
        in
        {
          ampel-api = binary "ampel-api";
          ampel-worker = binary "ampel-worker";
        }
      );
    };
}
