// Make a single mongod a one-member replica set named rs0 and wait until it is primary.
// Safe to run again. Run by mongosh: the compose service `mongo-init`, and the Job
// mongodb-init-replica-set of the Kubernetes dev overlay (which sets MONGO_RS_HOST).
// MONGO_RS_HOST is the member's address as every client will dial it.
const host = process.env.MONGO_RS_HOST || "mongo:27017";
const config = { _id: "rs0", members: [{ _id: 0, host: host }] };

try {
  rs.status();
  print("replica set rs0 already initiated");
} catch (e) {
  if (e.codeName !== "NotYetInitialized") {
    throw e;
  }
  rs.initiate(config);
  print(`replica set rs0 initiated with member ${host}`);
}

const deadline = Date.now() + 60 * 1000;
while (!db.hello().isWritablePrimary) {
  if (Date.now() > deadline) {
    throw new Error("rs0 has no primary after 60 s");
  }
  sleep(500);
}
print("rs0 primary is up");
