// read_status_inputs (agent/status.hpp): what a running agent's status is made of, read from
// its outbox, gossip, uploader and puller. Apart from status.cpp, whose rendering the API's
// fuzz target links without the live components.
#include "agent/status.hpp"

#include "cloud/puller.hpp"
#include "cloud/uploader.hpp"
#include "lanes/gossip.hpp"

namespace lanesync::agent {

status_inputs read_status_inputs(outbox::store& store, const lanes::gossip* gossip,
                                 const cloud::uploader* uploader, const cloud::puller* puller) {
    status_inputs in;
    if (puller)
        in.pull = puller->get_status();
    in.catalog = store.catalog_scopes();
    if (gossip)
        in.peers = gossip->status();
    if (uploader)
        in.cloud = uploader->get_status();
    in.counts = store.get_counts();
    if (!gossip)
        in.marks = store.peer_marks();
    in.stored_rebuild = store.get_rebuild_state();
    in.summaries = store.origin_summaries();
    if (gossip || uploader)
        in.health = store.health();
    if (gossip) {
        in.rebuild = gossip->rebuild();
        in.origins = gossip->origins(in.summaries);
    }
    return in;
}

} // namespace lanesync::agent
