#include "runtime/device_filter.h"

#include <fcntl.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <string>

#include "common/fs.h"

namespace isola {

namespace {

// Registers: r1 the context (struct bpf_cgroup_dev_ctx), r2 its access_type,
// r3 the device type, r4 the access asked for, r5 major, r6 minor.
constexpr uint8_t R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R5 = 5, R6 = 6, R7 = 7;

BpfInsn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  return {code, static_cast<uint8_t>(dst | (src << 4)), off, imm};
}
BpfInsn load_u32(uint8_t dst, uint8_t src, int16_t off) { return insn(BPF_LDX | BPF_W | BPF_MEM, dst, src, off, 0); }
BpfInsn alu32_imm(uint8_t op, uint8_t dst, int32_t imm) { return insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm); }
BpfInsn mov32_reg(uint8_t dst, uint8_t src) { return insn(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0); }
BpfInsn mov64_imm(uint8_t dst, int32_t imm) { return insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm); }
BpfInsn jne_imm(uint8_t dst, int32_t imm) { return insn(BPF_JMP | BPF_JNE | BPF_K, dst, 0, 0, imm); }
BpfInsn exit_insn() { return insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }

int32_t access_mask(const std::string& access) {
  int32_t mask = 0;
  for (char c : access) {
    if (c == 'm') mask |= BPF_DEVCG_ACC_MKNOD;
    if (c == 'r') mask |= BPF_DEVCG_ACC_READ;
    if (c == 'w') mask |= BPF_DEVCG_ACC_WRITE;
  }
  return mask;
}

// One rule: each test that fails jumps past the block; if all pass, the
// rule decides.
std::vector<BpfInsn> rule_block(const DeviceRule& r) {
  std::vector<BpfInsn> b;
  if (r.type == 'c' || r.type == 'b') b.push_back(jne_imm(R3, r.type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK));
  int32_t mask = access_mask(r.access);
  if (mask != (BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE)) {
    // Matches only when every access asked for is in the rule's.
    b.push_back(mov32_reg(R7, R4));
    b.push_back(alu32_imm(BPF_AND, R7, ~mask & 0xffff));
    b.push_back(jne_imm(R7, 0));
  }
  if (r.major && *r.major >= 0) b.push_back(jne_imm(R5, static_cast<int32_t>(*r.major)));
  if (r.minor && *r.minor >= 0) b.push_back(jne_imm(R6, static_cast<int32_t>(*r.minor)));
  b.push_back(mov64_imm(R0, r.allow ? 1 : 0));
  b.push_back(exit_insn());
  for (size_t i = 0; i < b.size(); ++i)
    if (b[i].code == (BPF_JMP | BPF_JNE | BPF_K)) b[i].off = static_cast<int16_t>(b.size() - 1 - i);
  return b;
}

std::vector<DeviceRule> effective_rules(const std::vector<DeviceRule>& spec_rules) {
  std::vector<DeviceRule> out;
  for (const DeviceRule& r : spec_rules)
    if (!(r.type == 'a' && !r.allow)) out.push_back(r);  // deny-all is the default
  auto allow = [&](char type, std::optional<int64_t> major, std::optional<int64_t> minor, const char* access) {
    out.push_back(DeviceRule{true, type, major, minor, access});
  };
  // As the v1 list: creating any node, and the nodes a container gets.
  allow('c', std::nullopt, std::nullopt, "m");
  allow('b', std::nullopt, std::nullopt, "m");
  for (int minor : {3, 5, 7, 8, 9}) allow('c', 1, minor, "rwm");
  for (int minor : {0, 1, 2}) allow('c', 5, minor, "rwm");
  allow('c', 136, std::nullopt, "rwm");
  return out;
}

long bpf(int cmd, bpf_attr& attr) { return ::syscall(SYS_bpf, cmd, &attr, sizeof attr); }

}  // namespace

std::vector<BpfInsn> device_filter_program(const std::vector<DeviceRule>& rules) {
  std::vector<BpfInsn> prog = {
      load_u32(R2, R1, 0),  // access_type
      mov32_reg(R3, R2),
      alu32_imm(BPF_AND, R3, 0xffff),  // type
      mov32_reg(R4, R2),
      alu32_imm(BPF_RSH, R4, 16),  // access
      load_u32(R5, R1, 4),         // major
      load_u32(R6, R1, 8),         // minor
  };
  std::vector<DeviceRule> all = effective_rules(rules);
  // The last matching rule decides: test them from the end.
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    std::vector<BpfInsn> b = rule_block(*it);
    prog.insert(prog.end(), b.begin(), b.end());
    // A rule that matches everything decides alone; the verifier refuses
    // code after it, which could never run.
    if (b.size() == 2) return prog;
  }
  prog.push_back(mov64_imm(R0, 0));
  prog.push_back(exit_insn());
  return prog;
}

namespace {

// Programs this process has loaded, by their instructions.
std::map<std::string, UniqueFd>& loaded_programs() {
  static std::map<std::string, UniqueFd> programs;
  return programs;
}

Result<int> load_device_filter(const std::vector<DeviceRule>& rules, const std::string& what) {
  static_assert(sizeof(BpfInsn) == sizeof(bpf_insn));
  std::vector<BpfInsn> prog = device_filter_program(rules);
  std::string key(reinterpret_cast<const char*>(prog.data()), prog.size() * sizeof(BpfInsn));
  if (auto it = loaded_programs().find(key); it != loaded_programs().end()) return it->second.get();
  auto load = [&](char* log, uint32_t log_size) {
    bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = reinterpret_cast<uint64_t>(prog.data());
    attr.insn_cnt = static_cast<uint32_t>(prog.size());
    attr.license = reinterpret_cast<uint64_t>("GPL");
    attr.log_buf = reinterpret_cast<uint64_t>(log);
    attr.log_size = log_size;
    attr.log_level = log ? 1 : 0;
    return bpf(BPF_PROG_LOAD, attr);
  };
  long fd = load(nullptr, 0);
  if (fd < 0) {
    Error e = sys_error("load the device access program", what);
    // Again, to say why (a log too small for the verifier fails the load).
    std::vector<char> log(1 << 20, '\0');
    if (load(log.data(), static_cast<uint32_t>(log.size())) < 0 && log[0])
      e.detail = "the verifier said: " + std::string(log.data()).substr(0, 2000);
    return fail(e);
  }
  auto& kept = loaded_programs()[key];
  kept.reset(static_cast<int>(fd));
  return kept.get();
}

}  // namespace

Result<void> preload_device_filter(const std::vector<DeviceRule>& rules) {
  TRY(load_device_filter(rules, "(preload)"));
  return {};
}

Result<void> attach_device_filter(const std::string& cgroup_dir, const std::vector<DeviceRule>& rules) {
  int prog_fd = TRY(load_device_filter(rules, cgroup_dir));
  UniqueFd dir = TRY(open_dir(cgroup_dir));
  bpf_attr attach;
  std::memset(&attach, 0, sizeof attach);
  attach.target_fd = static_cast<uint32_t>(dir.get());
  attach.attach_bpf_fd = static_cast<uint32_t>(prog_fd);
  attach.attach_type = BPF_CGROUP_DEVICE;
  if (bpf(BPF_PROG_ATTACH, attach) != 0) return fail(sys_error("attach the device access program", cgroup_dir));
  return {};
}

}  // namespace isola
