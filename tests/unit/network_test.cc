// The parts of networking that need no kernel: -p parsing, subnets, the
// address allocator's leases, the resolv.conf a bridged container gets.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <thread>

#include "common/fs.h"
#include "engine/networking.h"
#include "net/endpoint.h"
#include "net/ipv4.h"
#include "net/network.h"

using namespace isola;

TEST(PortMapping, ParsesDockersForms) {
  auto p = PortMapping::parse("8080:80");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_port, 8080);
  EXPECT_EQ(p->container_port, 80);
  EXPECT_EQ(p->proto, "tcp");
  EXPECT_EQ(p->host_ip, "");
  p = PortMapping::parse("127.0.0.1:5353:53/udp");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_ip, "127.0.0.1");
  EXPECT_EQ(p->proto, "udp");
  EXPECT_EQ(p->str(), "53/udp -> 127.0.0.1:5353");
  p = PortMapping::parse("80");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_port, 0);  // chosen at create
  p = PortMapping::parse("127.0.0.1::80");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_port, 0);
  EXPECT_EQ(p->host_ip, "127.0.0.1");
  p = PortMapping::parse("0.0.0.0:80:80");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_ip, "");
}

TEST(PortMapping, RefusesWhatIsNotAPort) {
  for (const char* bad : {"", "0", "70000:80", "80:0", "a:80", "80/sctp", "1:2:3:4", "::1:80:80", "x.y:80:80",
                          "8080:80/", " 80"}) {
    auto p = PortMapping::parse(bad);
    EXPECT_FALSE(p) << bad;
    if (!p) {
      EXPECT_NE(p.error().message().find(bad), std::string::npos) << p.error().message();
    }
  }
}

TEST(Ipv4Net, ParsesAndComparesSubnets) {
  auto n = Ipv4Net::parse("10.88.0.0/16");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->str(), "10.88.0.0/16");
  EXPECT_EQ(n->host(1).str(), "10.88.0.1");
  EXPECT_TRUE(n->contains(*Ipv4::parse("10.88.255.254")));
  EXPECT_FALSE(n->contains(*Ipv4::parse("10.89.0.1")));
  EXPECT_TRUE(n->overlaps(*Ipv4Net::parse("10.0.0.0/8")));
  EXPECT_FALSE(n->overlaps(*Ipv4Net::parse("10.89.0.0/16")));
  EXPECT_FALSE(Ipv4Net::parse("10.88.0.1/16"));  // host bits
  EXPECT_FALSE(Ipv4Net::parse("10.88.0.0/33"));
  EXPECT_FALSE(Ipv4Net::parse("10.88.0.0"));
  EXPECT_FALSE(Ipv4Net::parse("10.88.0.0/"));
}

class NetworkStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = make_temp_dir("/tmp", "isola-network-test-");
    ASSERT_TRUE(d);
    root_ = *d;
  }
  void TearDown() override { (void)remove_tree(root_); }
  std::string root_;
};

TEST_F(NetworkStoreTest, LeasesAreUniqueAndReleased) {
  auto store = NetworkStore::open(root_);
  ASSERT_TRUE(store);
  auto net = store->create("small", "10.200.0.0/29", {});  // hosts .1-.6; .1 is the gateway
  ASSERT_TRUE(net) << net.error().message();
  EXPECT_EQ(net->gateway.str(), "10.200.0.1");
  std::set<std::string> got;
  for (int i = 0; i < 5; ++i) {
    auto a = store->lease(*net, std::string(63, 'a') + char('0' + i));
    ASSERT_TRUE(a) << a.error().message();
    got.insert(a->str());
  }
  EXPECT_EQ(got, (std::set<std::string>{"10.200.0.2", "10.200.0.3", "10.200.0.4", "10.200.0.5", "10.200.0.6"}));
  auto full = store->lease(*net, std::string(64, 'b'));
  ASSERT_FALSE(full);
  EXPECT_NE(full.error().message().find("every address"), std::string::npos);
  // The same container asking again gets its address back.
  EXPECT_EQ(store->lease(*net, std::string(63, 'a') + '2')->str(), "10.200.0.4");
  ASSERT_TRUE(store->release(*net, std::string(63, 'a') + '2'));
  EXPECT_EQ(store->lease(*net, std::string(64, 'c'))->str(), "10.200.0.4");
  auto busy = store->remove(*net);
  ASSERT_FALSE(busy);
  EXPECT_NE(busy.error().message().find("5 container(s) use it"), std::string::npos);
}

TEST_F(NetworkStoreTest, ConcurrentLeasesNeverCollide) {
  auto store = NetworkStore::open(root_);
  ASSERT_TRUE(store);
  auto net = store->create("busy", "10.201.0.0/24", {});
  ASSERT_TRUE(net);
  std::vector<std::string> got(40);
  std::vector<std::thread> threads;
  for (int i = 0; i < 40; ++i)
    threads.emplace_back([&, i] {
      auto s = NetworkStore::open(root_);
      auto a = s->lease(*net, std::string(62, 'd') + std::to_string(10 + i));
      if (a) got[i] = a->str();
    });
  for (auto& t : threads) t.join();
  std::set<std::string> unique(got.begin(), got.end());
  EXPECT_EQ(unique.size(), 40u);
  EXPECT_FALSE(unique.contains(""));
}

TEST_F(NetworkStoreTest, SweepDropsLeasesOfGoneContainersAndAbandonedEmptyOnes) {
  auto store = NetworkStore::open(root_);
  ASSERT_TRUE(store);
  auto net = store->create("swept", "10.204.0.0/24", {});
  ASSERT_TRUE(net);
  ASSERT_TRUE(store->lease(*net, std::string(64, 'a')));
  ASSERT_TRUE(store->lease(*net, std::string(64, 'b')));
  // Empty leases: one a crashed writer left long ago, one being written now.
  std::string dir = root_ + "/networks/" + net->id + "/leases/";
  ASSERT_TRUE(is_directory(dir)) << dir;
  ASSERT_TRUE(write_file_atomic(dir + "10.204.0.200", "", 0600));
  ASSERT_TRUE(write_file_atomic(dir + "10.204.0.201", "", 0600));
  struct timespec old[2] = {{::time(nullptr) - 600, 0}, {::time(nullptr) - 600, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (dir + "10.204.0.200").c_str(), old, 0), 0);
  store->sweep_leases([](const std::string& id) { return id == std::string(64, 'a'); });
  auto left = store->leases(*net);
  ASSERT_TRUE(left);
  std::set<std::string> addrs;
  for (const auto& [addr, id] : *left) addrs.insert(addr);
  EXPECT_EQ(addrs, (std::set<std::string>{"10.204.0.2", "10.204.0.201"}));
}

TEST_F(NetworkStoreTest, NamesAndSubnetsAreChecked) {
  auto store = NetworkStore::open(root_);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create("one", "10.202.0.0/24", {}));
  EXPECT_FALSE(store->create("one", "10.203.0.0/24", {}));    // same name
  EXPECT_FALSE(store->create("two", "10.202.0.128/25", {}));  // overlaps
  for (const char* bad : {"", "none", "host", "bridge", "container:x", "-x", "a/b", "a b"})
    EXPECT_FALSE(store->create(bad, "", {})) << bad;
  auto chosen = store->create("auto", "", {});
  ASSERT_TRUE(chosen);
  EXPECT_FALSE(chosen->subnet.overlaps(*Ipv4Net::parse("10.202.0.0/24")));
  auto got = store->get(chosen->id.substr(0, 12));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->name, "auto");
  EXPECT_FALSE(store->get("nosuch"));
}

TEST(ResolvConf, DropsLoopbackNameServers) {
  EXPECT_EQ(container_resolv_conf("nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch lan\nnameserver ::1\n"),
            "nameserver 10.0.0.2\nsearch lan\n");
}
