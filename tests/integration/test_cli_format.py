"""--format templates and --filter, as docker users type them: inspect -f,
ps/images/stats/network ls/system df/info --format (table, table TEMPLATE,
a bare TEMPLATE, json) and ps/images/network ls --filter."""

import json
import re

from containers import IMAGE, box, describe, pid_alive  # noqa: F401

VM = "--isolation=vm"
BOOT = 240


def lines(text):
    return text.splitlines()


def engine_error(box, *args):
    """A command that must fail as the engine: exit 125, one message, no output."""
    res = box(*args)
    assert res.returncode == 125, describe(res)
    assert res.stdout == "", describe(res)
    assert res.stderr.startswith("isola: "), describe(res)
    return res.stderr


def test_inspect_format_prints_one_line_per_object(box):
    web = box.run_d("--name", "web", "--label", "app=shop", IMAGE, "sleep", "1000")
    db = box.run_d("--name", "db", IMAGE, "sleep", "1000")
    out = box.ok("inspect", "-f", '{{.State.Pid}} {{.Name}} {{.Config.Image}} {{.State.Running}} {{.State.Status}}',
                 "web", db[:12])
    [first, second] = lines(out)
    pid, name, image, running, status = first.split()
    assert int(pid) == box.inspect(web)["State"]["Pid"] and pid_alive(int(pid))
    assert (name, image, running, status) == ("/web", "busybox", "true", "running")
    assert second.split()[1:] == ["/db", "busybox", "true", "running"]
    assert box.ok("inspect", "--format", "{{json .Config.Labels}}", "web") == '{"app":"shop"}\n'
    assert box.ok("inspect", "-f", '{{index .Config.Labels "app"}}|{{.Id}}', "web") == f"shop|{web}\n"
    assert box.ok("inspect", "-f", "{{range .Config.Cmd}}<{{.}}>{{end}}", "web") == "<sleep><1000>\n"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", box.ok("inspect", "-f", "{{.Id}}", IMAGE))
    # Without -f: the JSON array, as before.
    assert [o["Name"] for o in json.loads(box.ok("inspect", "web", "db"))] == ["/web", "/db"]


def test_template_errors_are_engine_errors_naming_the_place(box):
    box.run_d("--name", "web", IMAGE, "sleep", "1000")
    err = engine_error(box, "inspect", "-f", "{{.State.Nope}}", "web")
    assert 'template: :1:3: executing "" at <.State.Nope>: map has no entry for key "Nope"' in err, err
    err = engine_error(box, "inspect", "-f", "pid {{.State.Pid", "web")
    assert "template: :1:7: unclosed action" in err and "fix the template" in err, err
    err = engine_error(box, "ps", "--format", "{{if .Names}}x")
    assert "unexpected EOF" in err, err
    err = engine_error(box, "ps", "--format", "{{.Nope}}")
    assert 'map has no entry for key "Nope"' in err, err
    err = engine_error(box, "images", "--format", "{{nosuch .ID}}")
    assert 'function "nosuch" not defined' in err, err


def test_ps_templates_and_table_headers(box):
    web = box.run_d("--name", "web", "--label", "app=shop", "--label", "tier=front", IMAGE, "sleep", "1000")
    # docker users type \t inside single quotes: it becomes a tab.
    assert box.ok("ps", "--format", r"{{.Names}}\t{{.State}}") == "web\trunning\n"
    assert box.ok("ps", "--format", "{{.ID}} {{.Image}} {{.Command}}") == f'{web[:12]} busybox "sleep 1000"\n'
    assert box.ok("ps", "--no-trunc", "--format", "{{.ID}}") == web + "\n"
    assert box.ok("ps", "--format", '{{.Label "app"}} {{.Labels}}') == "shop app=shop,tier=front\n"
    assert re.fullmatch(r"Up .*\n", box.ok("ps", "--format", "{{.Status}}"))
    table = lines(box.ok("ps", "--format", r"table {{.ID}}\t{{.Names}}\t{{.Isolation}}"))
    assert re.split(r"\s{3,}", table[0]) == ["CONTAINER ID", "NAMES", "ISOLATION"], table
    assert table[1].split() == [web[:12], "web", "process"], table
    default = lines(box.ok("ps"))
    assert re.split(r"\s{3,}", default[0]) == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES",
                                               "ISOLATION"], default
    # The header alone when nothing matches, as docker.
    assert lines(box.ok("ps", "--filter", "name=nothing", "--format", "table {{.Names}}")) == ["NAMES"]
    assert box.ok("ps", "--filter", "name=nothing", "--format", "{{.Names}}") == ""
    # json keeps isola's array (what scripts and the completion parse).
    assert [e["Id"] for e in json.loads(box.ok("ps", "--format", "json"))] == [web]


def test_ps_filters(box):
    web = box.run_d("--name", "web", "--label", "app=shop", IMAGE, "sleep", "1000")
    db = box.run_d("--name", "db", "--label", "tier=db", IMAGE, "sleep", "1000")
    res = box.run("--name", "done", IMAGE, "sh", "-c", "exit 3")
    assert res.returncode == 3, describe(res)

    def names(*filters, all=False):
        args = ["ps", "--format", "{{.Names}}"] + (["-a"] if all else [])
        for f in filters:
            args += ["--filter", f]
        return sorted(lines(box.ok(*args)))

    assert names() == ["db", "web"]
    assert names("status=exited") == ["done"]  # implies -a, as docker
    assert names("exited=3") == ["done"] and names("exited=0") == []
    assert names("name=we") == ["web"]
    assert names("name=web", "name=db") == ["db", "web"]  # one key: OR
    assert names("name=web", "label=tier=db") == []  # two keys: AND
    assert names("label=app") == ["web"] and names("label=app=other") == []
    assert names("label!=app", all=True) == ["db", "done"]
    assert names("id=" + db[:6]) == ["db"]
    assert names("ancestor=busybox", all=True) == ["db", "done", "web"]
    assert names("isolation=process") == ["db", "web"] and names("isolation=vm") == []
    assert names("before=db", all=True) == ["web"] and names("since=db", all=True) == ["done"]
    assert names("status=running", "status=exited") == ["db", "done", "web"]
    assert box.ok("ps", "-q", "-f", "name=web") == web[:12] + "\n"

    err = engine_error(box, "ps", "--filter", "colour=red")
    assert "unknown filter \"colour\"" in err and "valid filters are: ancestor, before" in err, err
    err = engine_error(box, "ps", "--filter", "status=sleeping")
    assert "status=sleeping" in err and "exited" in err, err
    err = engine_error(box, "ps", "--filter", "name")
    assert "KEY=VALUE" in err, err


def test_images_format_and_filters(box):
    assert box.ok("images", "--format", "{{.Repository}}:{{.Tag}}") == "busybox:latest\n"
    image_id = box.ok("images", "-q")
    assert box.ok("images", "--format", "{{.ID}}") == image_id
    table = lines(box.ok("images", "--format", r"table {{.Repository}}\t{{.Tag}}\t{{.Size}}"))
    assert table[0].split() == ["REPOSITORY", "TAG", "SIZE"] and table[1].split()[:2] == ["busybox", "latest"]
    assert re.split(r"\s{3,}", lines(box.ok("images"))[0]) == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    assert box.ok("images", "--filter", "reference=busy*", "--format", "{{.Repository}}") == "busybox\n"
    assert box.ok("images", "--filter", "reference=alpine*", "-q") == ""
    assert box.ok("images", "--filter", "dangling=true", "-q") == ""
    assert box.ok("images", "--filter", "dangling=false", "-q") == image_id
    err = engine_error(box, "images", "--filter", "name=busybox")
    assert "unknown filter \"name\"" in err and "reference" in err, err
    rows = json.loads(box.ok("images", "--format", "json"))
    assert [r["Repository"] for r in rows] == ["busybox"]


def test_network_ls_and_inspect_format_and_filters(box):
    box.ok("network", "create", "--label", "team=a", "fmtnet")
    try:
        assert box.ok("network", "ls", "--filter", "label=team=a", "--format", "{{.Name}} {{.Driver}}") == \
            "fmtnet bridge\n"
        assert box.ok("network", "ls", "-f", "name=fmtn", "--format", "{{.Name}}") == "fmtnet\n"
        table = lines(box.ok("network", "ls", "--filter", "driver=bridge", "--format", r"table {{.ID}}\t{{.Name}}"))
        assert re.split(r"\s{3,}", table[0]) == ["NETWORK ID", "NAME"] and "fmtnet" in [r.split()[1] for r in table[1:]]
        assert box.ok("network", "inspect", "-f", "{{.Name}}", "fmtnet") == "fmtnet\n"
        err = engine_error(box, "network", "ls", "--filter", "scope=local")
        assert "valid filters are: driver, id, label, name" in err, err
    finally:
        box.ok("network", "rm", "fmtnet")


def test_stats_system_df_and_info_templates(box):
    cid = box.run_d("--name", "web", IMAGE, "sleep", "1000")
    out = box.ok("stats", "--no-stream", "--format", "{{.Name}} {{.ID}} {{.PIDs}}", "web")
    assert out == f"web {cid[:12]} 1\n", out
    table = lines(box.ok("stats", "--no-stream", "--format", r"table {{.Name}}\t{{.MemUsage}}"))
    assert re.split(r"\s{3,}", table[0]) == ["NAME", "MEM USAGE / LIMIT"] and table[1].startswith("web"), table
    assert lines(box.ok("system", "df", "--format", "{{.Type}}={{.TotalCount}}/{{.Active}}")) == \
        ["Images=1/1", "Containers=1/1"]
    assert box.ok("info", "--format", "{{.Storage.Images}} {{.Storage.Running}}") == "1 1\n"
    assert json.loads(box.ok("info", "--format", "{{json .Storage}}"))["Containers"] == 1


def test_vm_container_pid_and_isolation_filter(box):
    vm = box.run_d("--name", "invm", VM, IMAGE, "sleep", "1000", timeout=BOOT)
    proc = box.run_d("--name", "inproc", IMAGE, "sleep", "1000")
    pid, isolation = box.ok("inspect", "-f", "{{.State.Pid}} {{.Isolation}}", "invm", timeout=60).split()
    assert int(pid) > 0 and pid_alive(int(pid)) and isolation == "vm"
    assert box.ok("ps", "--filter", "isolation=vm", "-q", "--no-trunc") == vm + "\n"
    assert box.ok("ps", "--filter", "isolation=process", "--format", "{{.Names}} {{.Isolation}}") == \
        "inproc process\n"
    box.rm_f(vm)
    box.rm_f(proc)
