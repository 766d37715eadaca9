"""A nearest-neighbour index over item vectors, for serving: exact for small catalogs, HNSW above.

:class:`VectorIndex` keeps one vector per item id (a string) in a faiss index and answers
"the ``k`` items with the highest inner product with this query" (or cosine similarity, with
``metric="cosine"``)::

    index = VectorIndex.build(item_ids, pipeline.item_vectors(), IndexConfig(metric="cosine"))
    [hits] = index.search(user_state, k=10, exclude=seen_items)
    hits.ids, hits.scores
    index.similar_items("50", k=10)
    index.add(["new-item"], vector[None])     # re-adding an id replaces its vector
    index.remove(["50"])
    index.save("runs/serve/index")           # atomic; VectorIndex.load(...) reads it back

Which faiss index:

* Fewer than ``hnsw_threshold`` items: ``IndexFlatIP``, exact.
* From ``hnsw_threshold`` items on: ``IndexHNSWFlat`` with inner product (Malkov & Yashunin,
  2018), approximate; ``hnsw_m``, ``ef_construction`` and ``ef_search`` trade build time,
  memory and query time against recall. ``bench/run_index.py`` measures recall@10 against
  exact search.

The choice is made when the index is (re)built: a flat index that grows past the threshold is
rebuilt as HNSW at once; an HNSW index that shrinks below it changes back at its next
compaction.

Removal. HNSW graphs cannot drop a node, so neither index kind deletes rows in place: a
removed (or replaced) item's row stays in the faiss index, is marked dead, and every search
passes faiss an ``IDSelector`` that admits only live rows (and not the ``exclude`` ids). Dead
nodes still serve as stepping stones in the graph, so recall does not drop, and no
over-fetching is needed. When dead rows exceed ``compact_ratio`` of all rows the index is
rebuilt from its live vectors (:meth:`VectorIndex.compact`).

Threads. Any number of threads may search at once (faiss releases the GIL); writes
(:meth:`~VectorIndex.add`, :meth:`~VectorIndex.remove`, :meth:`~VectorIndex.compact`) run one
at a time and hold readers off only while they change the faiss index in place (adding a few
vectors) or swap in a rebuilt one; the rebuild itself runs while searches continue on the
old index. The library never changes faiss's OpenMP thread count; callers that want one
thread per query call ``faiss.omp_set_num_threads(1)``.

faiss is imported only when an index is built or loaded, so ``import lmrec`` works without
it (``pip install lmrec[serve]``).
"""

from lmrec.index._backend import faiss_available
from lmrec.index._config import IndexConfig, index_config
from lmrec.index._config import IndexKind as IndexKind
from lmrec.index._config import Metric as Metric
from lmrec.index._index import Neighbours, VectorIndex
from lmrec.index._storage import FORMAT_VERSION as FORMAT_VERSION
from lmrec.index._storage import MANIFEST_FILE as MANIFEST_FILE

__all__ = ["IndexConfig", "Neighbours", "VectorIndex", "faiss_available", "index_config"]
