// isola completion bash: a bash completion script made from the command
// tree. The generated part is data (per command: its subcommands, flags,
// options that take a value, what its operands name); the function that
// reads it is fixed text below and asks isola itself for the names of
// containers, images and networks, with the --root given on the line.
#include <iostream>
#include <memory>
#include <sstream>

#include "cli/command_tree.h"
#include "cli/commands.h"

namespace isola::cli {

namespace {

// The fixed part. _isola_words KIND lists what exists; _isola completes.
// Words are rejoined across ':' and '=' (bash splits at them by default) so
// "busybox:lat" and "--network=br" complete as one word.
constexpr const char* kBashFunctions = R"BASH(
_isola_has() { [[ " $1 " == *" $2 "* ]]; }

_isola_words() {
  local kind=$1; shift
  case $kind in
    container)
      "$@" ps -a --format json 2>/dev/null | tr -d ' \n' | grep -oE '"Names":\["[^"]*"' | sed 's/^"Names":\["//; s/"$//'
      "$@" ps -a --format json 2>/dev/null | tr -d ' \n' | grep -oE '"Id":"[0-9a-f]{64}"' | cut -c7-18 ;;
    image)
      "$@" images --format json 2>/dev/null | tr -d ' \n' | tr '}' '\n' |
        sed -n 's/.*"Repository":"\([^"]*\)".*"Tag":"\([^"]*\)".*/\1:\2/p' | grep -v '^<none>:' ;;
    network)
      "$@" network ls 2>/dev/null | awk 'NR > 1 { print $2 }' ;;
  esac
}

_isola_reply() {  # candidates cur strip-chars (candidates hold no blanks)
  local c
  COMPREPLY=()
  for c in $(compgen -W "$1" -- "$2"); do COMPREPLY+=("${c:$3}"); done
}

# Sets words/cword: COMP_WORDS with the pieces bash split at ':' and '='
# joined back, and strip: how much longer the joined word is than bash's.
_isola_join_words() {
  local i w
  for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
    w=${COMP_WORDS[i]}
    if ((i > 1)) && [[ $w == [:=] || ${COMP_WORDS[i-1]} == [:=] ]]; then
      words[${#words[@]}-1]+=$w
    else
      words+=("$w")
    fi
    ((i == COMP_CWORD)) && cword=$((${#words[@]} - 1))
  done
  strip=$((${#words[cword]} - ${#COMP_WORDS[COMP_CWORD]}))
  ((strip < 0)) && strip=0
}

# Sets path (the command), n (operands given), expect (an option waiting
# for its value), rest (past a prefix command's first operand), root.
_isola_walk() {
  local i w
  for ((i = 1; i < cword; i++)); do
    w=${words[i]}
    if [[ -n $expect ]]; then
      [[ $expect == --root ]] && root=(--root "$w")
      expect=""
      continue
    fi
    ((rest)) && continue
    case $w in
      --root=*) root=(--root "${w#--root=}") ;;
      --root) expect=--root ;;
      -*=*) ;;
      -*) _isola_has "${_isola_valued[$path]}" "$w" && expect=$w ;;
      *)
        if ((n == 0)) && [[ -n ${_isola_child["$path $w"]} ]]; then
          path=${_isola_child["$path $w"]}
        else
          n=$((n + 1))
          [[ -n ${_isola_rest[$path]} ]] && rest=1
        fi ;;
    esac
  done
}

_isola() {
  local -a words=() root=()
  local cword=0 strip=0 path=isola expect="" n=0 rest=0
  _isola_join_words
  local cur=${words[cword]}
  _isola_walk
  local -a isola=("${words[0]}" "${root[@]}")
  local kind
  if [[ -n $expect ]]; then
    kind=${_isola_option_kind["$path $expect"]}
  elif ((rest)); then
    compopt -o default 2>/dev/null; COMPREPLY=(); return 0
  elif [[ $cur == -*=* ]]; then
    kind=${_isola_option_kind["$path ${cur%%=*}"]}
    [[ -z $kind ]] && { COMPREPLY=(); return 0; }
    local c list=""
    for c in $(_isola_words "$kind" "${isola[@]}"); do list+="${cur%%=*}=$c "; done
    _isola_reply "$list" "$cur" "$strip"; return 0
  elif [[ $cur == -* ]]; then
    _isola_reply "${_isola_flags[$path]} ${_isola_valued[$path]}" "$cur" "$strip"; return 0
  elif [[ -n ${_isola_subcommands[$path]} ]]; then
    ((n == 0)) && _isola_reply "${_isola_subcommands[$path]}" "$cur" "$strip"; return 0
  else
    local -a kinds
    read -ra kinds <<< "${_isola_operands[$path]}"  # no globbing: "container*" is a word, not a pattern
    if ((n < ${#kinds[@]})); then kind=${kinds[n]}
    elif ((${#kinds[@]})) && [[ ${kinds[-1]} == *'*' ]]; then kind=${kinds[-1]}
    fi
    kind=${kind%'*'}
  fi
  if [[ -z $kind || $kind == none ]]; then
    compopt -o default 2>/dev/null; COMPREPLY=(); return 0
  fi
  _isola_reply "$(_isola_words "$kind" "${isola[@]}")" "$cur" "$strip"
}

complete -F _isola isola
)BASH";

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

// One command's rows of the tables.
void emit_command(const CommandInfo& cmd, std::ostream& out) {
  std::string key = "\"" + cmd.joined(' ') + "\"";
  std::vector<std::string> subs, flags, valued, kinds;
  for (const CommandInfo& sub : cmd.subcommands) {
    std::vector<std::string> names = {sub.path.back()};
    names.insert(names.end(), sub.aliases.begin(), sub.aliases.end());
    for (const std::string& n : names) {
      subs.push_back(n);
      out << "_isola_child[\"" << cmd.joined(' ') << " " << n << "\"]=\"" << sub.joined(' ') << "\"\n";
    }
  }
  for (const OptionInfo& o : cmd.options) {
    (o.takes_value ? valued : flags).insert((o.takes_value ? valued : flags).end(), o.names.begin(), o.names.end());
    if (o.kind == ValueKind::none) continue;
    for (const std::string& n : o.names)
      out << "_isola_option_kind[\"" << cmd.joined(' ') << " " << n << "\"]=" << value_kind_name(o.kind) << "\n";
  }
  for (const OperandInfo& op : cmd.operands) kinds.push_back(std::string(value_kind_name(op.kind)) + (op.repeats ? "*" : ""));
  if (!subs.empty()) out << "_isola_subcommands[" << key << "]=\"" << join(subs) << "\"\n";
  out << "_isola_flags[" << key << "]=\"" << join(flags) << "\"\n";
  if (!valued.empty()) out << "_isola_valued[" << key << "]=\"" << join(valued) << "\"\n";
  if (!kinds.empty()) out << "_isola_operands[" << key << "]='" << join(kinds) << "'\n";
  if (cmd.takes_rest) out << "_isola_rest[" << key << "]=1\n";
}

}  // namespace

std::string bash_completion(const CommandInfo& root) {
  std::ostringstream out;
  out << "# bash completion for isola " << ISOLA_VERSION << ", generated by 'isola completion bash'\n"
      << "# from isola's command definitions: regenerate it rather than edit it.\n"
      << "declare -gA _isola_child=() _isola_subcommands=() _isola_flags=() _isola_valued=()\n"
      << "declare -gA _isola_option_kind=() _isola_operands=() _isola_rest=()\n";
  for (const CommandInfo* cmd : flatten(root)) emit_command(*cmd, out);
  out << kBashFunctions;
  return out.str();
}

void add_completion_command(CLI::App& app, Globals& g) {
  auto shell = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("completion", "Print a shell completion script (bash), generated from the commands");
  cmd->add_option("SHELL", *shell, "The shell: bash")->required();
  cmd->callback([&app, &g, shell] {
    g.action = [&app, shell] {
      if (*shell != "bash")
        return report(make_error("completion", *shell, "unsupported shell; isola generates completion for bash"));
      std::cout << bash_completion(describe_commands(app));
      return 0;
    };
  });
}

}  // namespace isola::cli
