// The --format template language: what a user's template prints for the
// JSON isola shows, and the errors for templates that are wrong.
#include "cli/gotemplate.h"

#include <gtest/gtest.h>

using isola::Json;
using isola::cli::GoTemplate;

namespace {

const Json kInspect = Json::parse(R"({
  "Id": "abc123", "Name": "/web",
  "State": {"Pid": 42, "Running": true, "Status": "running", "ExitCode": 0},
  "Config": {"Image": "busybox", "Cmd": ["sleep", "100"], "Labels": {"app": "shop", "tier": "db"}, "Env": []},
  "Args": ["a", "b"], "Ratio": 0.5, "Size": 3.0, "Nothing": null, "Empty": ""
})");

std::string run(const std::string& text, const Json& dot = kInspect) {
  auto t = GoTemplate::parse(text);
  if (!t) return "PARSE: " + t.error().message();
  auto out = t->execute(dot);
  if (!out) return "EXEC: " + out.error().message();
  return *out;
}

TEST(GoTemplate, FieldsPrintAsGoPrintsThem) {
  EXPECT_EQ(run("{{.State.Pid}}"), "42");
  EXPECT_EQ(run("pid={{ .State.Pid }} {{.Name}}"), "pid=42 /web");
  EXPECT_EQ(run("{{.State.Running}}"), "true");
  EXPECT_EQ(run("{{.Config.Cmd}}"), "[sleep 100]");
  EXPECT_EQ(run("{{.Config.Labels}}"), "map[app:shop tier:db]");
  EXPECT_EQ(run("{{.Size}} {{.Ratio}}"), "3 0.5");
  EXPECT_EQ(run("{{.Nothing}}"), "<no value>");
  EXPECT_EQ(run("{{$.Id}}"), "abc123");
  EXPECT_EQ(run("plain text"), "plain text");
  EXPECT_EQ(run(""), "");
}

TEST(GoTemplate, Functions) {
  EXPECT_EQ(run("{{json .Config.Labels}}"), R"({"app":"shop","tier":"db"})");
  EXPECT_EQ(run("{{json .Name}}"), R"("/web")");
  EXPECT_EQ(run(R"({{join .Config.Cmd " "}})"), "sleep 100");
  EXPECT_EQ(run("{{upper .Config.Image}} {{lower \"AbC\"}} {{title \"hello world\"}}"), "BUSYBOX abc Hello World");
  EXPECT_EQ(run(R"({{split "a:b:c" ":"}})"), "[a b c]");
  EXPECT_EQ(run("{{len .Config.Cmd}} {{len .Name}} {{len .Config.Labels}}"), "2 4 2");
  EXPECT_EQ(run(R"({{index .Config.Labels "app"}} {{index .Config.Cmd 1}})"), "shop 100");
  EXPECT_EQ(run(R"({{index .Config.Labels "nope"}})"), "<no value>");
  EXPECT_EQ(run(R"({{println "a" 1}})"), "a 1\n");
  EXPECT_EQ(run(R"({{.Name | printf "%q"}})"), R"("/web")");
  EXPECT_EQ(run(R"({{.Config.Image | upper | printf "<%s>"}})"), "<BUSYBOX>");
  EXPECT_EQ(run(R"({{(index .Config.Cmd 0) | len}})"), "5");
}

TEST(GoTemplate, Printf) {
  EXPECT_EQ(run(R"({{printf "%-6s|%5d|%v|%t" "ab" .State.Pid .Args .State.Running}})"), "ab    |   42|[a b]|true");
  EXPECT_EQ(run(R"({{printf "%05d %.2f %x %%" 42 .Ratio 255}})"), "00042 0.50 ff %");
  EXPECT_EQ(run(R"({{printf "%d" "x"}})"), "%!d(string=x)");
  EXPECT_EQ(run(R"({{printf "%s %s" "x"}})"), "x %!s(MISSING)");
  EXPECT_EQ(run(R"({{printf "%.2s" "abcdef"}})"), "ab");
}

TEST(GoTemplate, Comparisons) {
  EXPECT_EQ(run(R"({{eq .State.Status "running"}} {{ne .State.Pid 42}} {{lt 1 2}} {{gt 1.5 2}})"),
            "true false true false");
  EXPECT_EQ(run(R"({{eq .State.Status "exited" "running"}})"), "true");
  EXPECT_EQ(run(R"({{and 1 "" 3}}|{{or 0 "" "x"}}|{{not .Empty}})"), "|x|true");
  EXPECT_EQ(run(R"({{eq 1 "1"}})").rfind("EXEC: template: :1:3: executing \"\" at <eq>: error calling eq: incompatible", 0),
            0u)
      << run(R"({{eq 1 "1"}})");
}

TEST(GoTemplate, ControlStructures) {
  EXPECT_EQ(run("{{range .Config.Cmd}}[{{.}}]{{end}}"), "[sleep][100]");
  EXPECT_EQ(run("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}"), "app=shop;tier=db;");
  EXPECT_EQ(run("{{range $i, $a := .Args}}{{$i}}{{$a}}{{end}}"), "0a1b");
  EXPECT_EQ(run("{{range .Config.Env}}x{{else}}none{{end}}"), "none");
  EXPECT_EQ(run("{{if .State.Running}}up{{else}}down{{end}}"), "up");
  EXPECT_EQ(run("{{if .Empty}}a{{else if eq .State.Pid 41}}b{{else if .State.Pid}}c{{else}}d{{end}}"), "c");
  EXPECT_EQ(run("{{with .State}}{{.Status}}/{{$.Name}}{{end}}"), "running//web");
  EXPECT_EQ(run("{{with .Empty}}x{{else}}empty{{end}}"), "empty");
  EXPECT_EQ(run("{{$x := .State.Pid}}{{$x}}"), "42");
  EXPECT_EQ(run("{{/* a comment */}}ok"), "ok");
}

TEST(GoTemplate, TrimMarkers) {
  EXPECT_EQ(run("a  {{- .State.Pid -}}  \n b"), "a42b");
  EXPECT_EQ(run("{{range .Args -}}\n  {{.}}\n{{- end}}"), "ab");
  EXPECT_EQ(run("{{-3}}"), "-3");
}

TEST(GoTemplate, DotInRangeOverMaps) {
  EXPECT_EQ(run("{{range .}}{{.}},{{end}}", Json::parse(R"({"b":2,"a":1})")), "1,2,");
  EXPECT_EQ(run("{{.}}", Json::parse(R"([1,"x",true])")), "[1 x true]");
}

TEST(GoTemplate, ExecutionErrorsNameThePlace) {
  EXPECT_EQ(run("{{.Foo}}"), "EXEC: template: :1:3: executing \"\" at <.Foo>: map has no entry for key \"Foo\"");
  EXPECT_EQ(run("ab\n {{.State.Nope}}"),
            "EXEC: template: :2:4: executing \"\" at <.State.Nope>: map has no entry for key \"Nope\"");
  EXPECT_EQ(run("{{.Name.X}}"), "EXEC: template: :1:3: executing \"\" at <.Name.X>: can't evaluate field X in type string");
  EXPECT_EQ(run("{{.Nothing.X}}"),
            "EXEC: template: :1:3: executing \"\" at <.Nothing.X>: nil pointer evaluating interface {}.X");
  EXPECT_EQ(run("{{nosuch 1}}"), "EXEC: template: :1:3: function \"nosuch\" not defined");
  EXPECT_EQ(run("{{index .Args 5}}"),
            "EXEC: template: :1:3: executing \"\" at <index>: error calling index: index out of range: 5");
  EXPECT_EQ(run("{{$nope}}"), "EXEC: template: :1:3: undefined variable: $nope");
  EXPECT_EQ(run("{{.Name 1}}"), "EXEC: template: :1:3: executing \"\" at <.Name>: can't give argument to non-function .Name");
}

TEST(GoTemplate, SyntaxErrorsNameThePosition) {
  EXPECT_EQ(run("{{.Name"), "PARSE: template: :1:3: unclosed action");
  EXPECT_EQ(run("x{{.Name}"), "PARSE: template: :1:9: unexpected \"}\" in command");
  EXPECT_EQ(run("{{if .Name}}x"), "PARSE: template: :1:3: unexpected EOF");
  EXPECT_EQ(run("{{end}}"), "PARSE: template: :1:3: unexpected {{end}}");
  EXPECT_EQ(run("{{\"abc}}"), "PARSE: template: :1:3: unterminated quoted string");
  EXPECT_EQ(run("{{.A | }}"), "PARSE: template: :1:6: missing command after |");
  EXPECT_EQ(run("{{}}"), "PARSE: template: :1:3: missing value for command");
  EXPECT_EQ(run("{{(.A}}"), "PARSE: template: :1:3: unclosed left paren");
  EXPECT_EQ(run("{{template \"x\"}}"), "PARSE: template: :1:3: {{template}} is not supported");
  EXPECT_EQ(run("{{#}}"), "PARSE: template: :1:3: unexpected \"#\" in command");
}

TEST(GoTemplate, HostileTemplatesEndWithAnError) {
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "{{if 1}}";
  EXPECT_NE(run(deep).find("nested too deeply"), std::string::npos);
  std::string parens(100000, '(');
  EXPECT_NE(run("{{" + parens + "}}").find("nested too deeply"), std::string::npos);
  std::string ranges;
  for (int i = 0; i < 30; ++i) ranges += "{{range $.Args}}";
  for (int i = 0; i < 30; ++i) ranges += "{{end}}";
  EXPECT_NE(run(ranges).find("too much work"), std::string::npos);
  std::string long_text(1 << 20, 'x');
  for (int i = 0; i < 1000; ++i) long_text += "{{.Name}}";
  EXPECT_EQ(run(long_text).size(), (1u << 20) + 4000);
}

}  // namespace
