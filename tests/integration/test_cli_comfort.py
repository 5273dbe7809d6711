"""The comforts of the command line: bash completion and man pages generated
from the command definitions, system df / system prune, version and info."""

import json
import re
import shlex
import subprocess

import imagegen as g
from containers import IMAGE, box  # noqa: F401  (the fixture)

BIG = 300_000


def bash_complete(bin_path, *words, cwd=None):
    """COMPREPLY of the generated completion for the line `isola WORDS`,
    the cursor on the last word (pass "" to complete a new word), typed in
    `cwd`."""
    script = (f'source <({shlex.quote(bin_path)} completion bash) || exit 9\n'
              f'COMP_WORDS=({" ".join(shlex.quote(w) for w in (bin_path, *words))})\n'
              f'COMP_CWORD={len(words)}\n'
              '_isola\n'
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    res = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, cwd=cwd)
    assert res.returncode == 0 and res.stderr == "", f"completion failed: {res}"
    return [w for w in res.stdout.splitlines() if w]


def help_subcommands(isola, *path):
    """The subcommands `isola PATH --help` lists (CLI11's Subcommands: section)."""
    out = isola(*path, "--help").stdout
    if "Subcommands:" not in out:
        return []
    section = out.split("Subcommands:", 1)[1]
    return [m.group(1) for m in re.finditer(r"^  ([\w-]+)", section, re.M)]


def command_tree(isola, path=()):
    """Every command path under `path`, from the --help output alone."""
    paths = []
    for name in help_subcommands(isola, *path):
        paths.append((*path, name))
        paths += command_tree(isola, (*path, name))
    return paths


def load_generated(isola, tmp_path, image):
    out = tmp_path / f"gen-{image.short_id}"
    isola("load", "-i", g.save("oci-dir", [image], out))


def big_image(tags, marker):
    return g.Image([g.Layer([g.File("marker", marker), g.File("big", b"\0" * BIG)])], tags)


def df(isola):
    return json.loads(isola("system", "df", "--format", "json").stdout)


# -- completion


def test_completion_script_loads_in_bash(isola):
    res = subprocess.run(["bash", "-c", f"source <({shlex.quote(isola.bin)} completion bash); complete -p isola"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stderr == "", res
    assert "-F _isola isola" in res.stdout


def test_completion_refuses_unknown_shells(isola):
    res = isola.fail("completion", "fish")
    assert "bash" in res.stderr


def test_completes_commands_and_options(isola):
    assert "run" in bash_complete(isola.bin, "ru")
    assert {"--rm", "--read-only"} <= set(bash_complete(isola.bin, "run", "--r"))
    assert set(bash_complete(isola.bin, "system", "")) == {"df", "events", "prune", "template"}
    assert set(bash_complete(isola.bin, "system", "template", "")) == {"ls", "build", "rm", "enable", "disable"}
    assert set(bash_complete(isola.bin, "network", "l")) == {"ls", "list"}
    assert "-f" in bash_complete(isola.bin, "system", "prune", "-")
    # After the image, the words are the container's: no isola options.
    assert bash_complete(isola.bin, "run", "busybox", "--r") == []


def test_completion_offers_every_top_level_command(isola):
    offered = set(bash_complete(isola.bin, ""))
    listed = set(help_subcommands(isola))
    assert {"run", "ps", "system", "completion", "man", "version"} <= listed
    assert listed <= offered, f"not offered: {listed - offered}"


def test_container_group_has_every_container_command(isola):
    # docker's `docker container --help`, less checkpoint-style extras.
    docker = {"attach", "commit", "cp", "create", "diff", "exec", "export", "inspect", "kill", "logs", "ls",
              "pause", "port", "prune", "rename", "restart", "rm", "run", "start", "stats", "stop", "top",
              "unpause", "update", "wait"}
    listed = set(help_subcommands(isola, "container"))
    assert docker <= listed, f"missing: {docker - listed}"
    assert docker <= set(bash_complete(isola.bin, "container", ""))


def test_container_x_does_what_x_does(box):
    assert box.ok("container", "run", "--name", "c1", IMAGE, "echo", "hi") == "hi\n"
    assert box.ok("container", "inspect", "-f", "{{.State.ExitCode}}", "c1") == "0\n"
    assert box.ok("container", "logs", "c1") == "hi\n"
    cid = box.ok("container", "create", IMAGE, "sleep", "100").strip()
    box.created.add(cid)
    box.ok("container", "start", cid)
    assert box.ok("container", "exec", cid, "echo", "in").strip() == "in"
    box.ok("container", "stop", "-t", "0", cid)
    box.ok("container", "rm", "c1", cid)
    assert box.ids() == []


def test_completes_names_from_the_store_on_the_line(box, tmp_path):
    box.create("--name", "webby", IMAGE, "true")
    box.ok("network", "create", "compnet")
    root = ["--root", str(box.root)]
    assert bash_complete(box.bin, *root, "rm", "web") == ["webby"]
    # Typed where files are named like the words the completion uses
    # internally ("container*"): they are not globbed.
    for name in ("containers.txt", "image-notes", "none"):
        (tmp_path / name).write_text("")
    assert bash_complete(box.bin, *root, "rm", "web", cwd=tmp_path) == ["webby"]
    assert "webby" in bash_complete(box.bin, *root, "start", "")
    assert bash_complete(box.bin, *root, "run", "-d", "busy") == ["busybox:latest"]
    # bash splits words at ':' by default; the tag still completes.
    assert bash_complete(box.bin, *root, "run", "busybox", ":", "lat") == ["latest"]
    assert set(bash_complete(box.bin, *root, "run", "--network", "")) == {"bridge", "compnet"}
    assert bash_complete(box.bin, *root, "run", "--network=comp") == ["--network=compnet"]
    assert bash_complete(box.bin, *root, "network", "connect", "comp") == ["compnet"]
    assert bash_complete(box.bin, *root, "network", "connect", "compnet", "we") == ["webby"]
    # Another store: nothing of this one.
    assert bash_complete(box.bin, "--root", str(tmp_path / "other"), "rm", "web") == []


# -- man pages


def test_man_pages_cover_every_command_and_render_cleanly(isola, tmp_path):
    out = tmp_path / "man"
    written = isola("man", out).stdout.split()
    expected = {"isola.1"} | {"isola-" + "-".join(p) + ".1" for p in command_tree(isola)}
    assert {p.rsplit("/", 1)[1] for p in written} == expected
    assert {p.name for p in out.iterdir()} == expected
    for page in sorted(out.iterdir()):
        res = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and res.stderr == "", f"{page.name}: {res.stderr}"
    text = (out / "isola-run.1").read_text()
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SEE ALSO"):
        assert f".SH {section}" in text
    assert r"\fB\-\-rm\fR" in text and r"\fIIMAGE\fR" in text
    rendered = subprocess.run(["man", "-l", str(out / "isola-network.1")], capture_output=True, text=True,
                              timeout=60, env={"MANWIDTH": "100", "PATH": "/usr/bin:/bin"}).stdout
    assert "isola-network-connect(1)" in rendered


# -- system df


def test_system_df_counts_images_and_containers(isola, box, tmp_path):
    before = df(box)
    assert before["Images"]["Total"] == 1 and before["Containers"]["Total"] == 0
    load_generated(box, tmp_path, big_image(["extra:1"], "df"))
    loaded = df(box)
    assert loaded["Images"]["Total"] == 2
    assert loaded["Images"]["Size"] >= before["Images"]["Size"] + BIG
    assert loaded["Images"]["Reclaimable"] == loaded["Images"]["Size"]  # no container uses either

    box.run("--name", "writer", IMAGE, "sh", "-c", f"head -c {BIG} /dev/zero > /data")
    used = df(box)
    assert used["Containers"]["Total"] == 1 and used["Containers"]["Active"] == 0
    assert used["Containers"]["Size"] >= BIG and used["Containers"]["Reclaimable"] == used["Containers"]["Size"]
    assert used["Images"]["Active"] == 1
    assert used["Images"]["Reclaimable"] < loaded["Images"]["Reclaimable"]
    [item] = used["Containers"]["Items"]
    assert item["Name"] == "writer" and item["Size"] >= BIG

    table = box.ok("system", "df").splitlines()
    assert table[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert table[2].split()[:3] == ["Containers", "1", "0"]
    verbose = box.ok("system", "df", "-v")
    assert "writer" in verbose and "extra" in verbose


# -- system prune


def test_system_prune_keeps_what_is_in_use(box, tmp_path):
    running = box.run_d("--name", "keeper", IMAGE, "sleep", "1000")
    box.run("--name", "done", IMAGE, "true")
    dangling = big_image([], "dangling")
    tagged = big_image(["unused:1"], "tagged")
    load_generated(box, tmp_path, dangling)
    load_generated(box, tmp_path, tagged)
    box.ok("network", "create", "spare")
    box.ok("network", "ls")  # makes the default network exist

    out = box.ok("system", "prune", "-f")
    assert re.search(r"^Total reclaimed space: (?!0B)\S+$", out, re.M), out
    assert "spare" in out and "deleted: " + dangling.id in out

    assert [e["Names"] for e in box.ps_json()] == [["keeper"]]
    assert box.state(running)["Status"] == "running"
    assert set(box.isola.tags()) == {"busybox:latest", "unused:1"}
    assert dangling.short_id not in box.isola.ids()
    networks = box.ok("network", "ls").split()
    assert "bridge" in networks and "spare" not in networks

    out = box.ok("system", "prune", "-a", "-f")
    assert "untagged: unused:1" in out
    assert set(box.isola.tags()) == {"busybox:latest"}  # the running container's
    box.rm_f(running)


def test_system_prune_refuses_without_a_terminal(box):
    box.run("--name", "stopped", IMAGE, "true")
    res = box("system", "prune")
    assert res.returncode == 125 and "-f" in res.stderr and "terminal" in res.stderr, res
    assert [e["Names"] for e in box.ps_json()] == [["stopped"]]


# -- version and info


def test_version_json(isola):
    v = json.loads(isola("version", "--format", "json").stdout)
    assert re.match(r"^\d+\.\d+\.\d+$", v["Version"])
    assert v["Version"] in isola("--version").stdout
    assert v["Os"] == "linux" and v["Arch"] in ("amd64", "arm64")
    assert re.match(r"^([0-9a-f]{7,}(-dirty)?|unknown)$", v["GitCommit"]), v
    assert v["Compiler"] and v["BuildType"] and v["KernelVersion"]
    assert "GuestKernel" in v
    assert isola("version").stdout.startswith("isola version " + v["Version"])


def test_info_shows_storage(box):
    box.run_d("--name", "up", IMAGE, "sleep", "1000")
    box.create("--name", "idle", IMAGE, "true")
    info = json.loads(box.ok("info", "--format", "json"))
    assert info["Root"] == str(box.root)
    assert info["Storage"]["Images"] == 1
    assert info["Storage"]["Containers"] == 2 and info["Storage"]["Running"] == 1
    assert info["Storage"]["Size"] > 0
    for key in ("CgroupMode", "IsolationLevels", "VM"):
        assert key in info
    assert "GuestKernel" in info["VM"] and "Accelerator" in info["VM"]
    text = box.ok("info")
    assert re.search(r"^Containers:\s+2 \(running 1\)$", text, re.M), text
