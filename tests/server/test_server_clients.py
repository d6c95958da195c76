"""Real clients, unchanged, against ``reasonrank serve`` as a process on the scripted (word-overlap)
backend with a token: TEI's two (LlamaIndex's ``TextEmbeddingInference``, Haystack's
``HuggingFaceTEIRanker``) on ``/rerank`` and Cohere's framework clients on ``/v2/rerank``."""

from __future__ import annotations

import pytest

DOCS = ["blue sky over the sea", "the red fox jumps", "a fox den", "nothing here"]
QUERY = "red fox"
ORDER = [1, 2, 0, 3]
TOKEN = "t0ken"


@pytest.fixture
def server(server_factory):
    server = server_factory("--backend", "scripted", "--model", "overlap", "--served-model-name", "rerank-v3.5",
                            env={"REASONRANK_TOKEN": TOKEN})
    yield server
    server.stop()


def test_llama_index_tei_client_sends_the_bare_token_and_gets_every_text(server):
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from llama_index.postprocessor.tei_rerank import TextEmbeddingInference

    nodes = [NodeWithScore(node=TextNode(text=text), score=0.5) for text in DOCS]
    reranker = TextEmbeddingInference(base_url=server.url, top_n=3, auth_token=TOKEN)  # "Authorization: t0ken"
    ranked = reranker.postprocess_nodes(nodes, query_bundle=QueryBundle(QUERY))
    assert [n.node.text for n in ranked] == [DOCS[i] for i in ORDER[:3]]
    assert ranked[0].score > ranked[1].score > ranked[2].score
    refused = TextEmbeddingInference(base_url=server.url, auth_token="wrong")
    with pytest.raises(AssertionError):  # the client asserts one entry per node; a 401 body is no list
        refused.postprocess_nodes(nodes, query_bundle=QueryBundle(QUERY))


def test_haystack_tei_ranker_drops_the_path_prefix_and_takes_the_top_k(server):
    from haystack import Document
    from haystack.utils import Secret
    from haystack_integrations.components.rankers.huggingface_api import HuggingFaceTEIRanker

    ranker = HuggingFaceTEIRanker(url=f"{server.url}/some/prefix", top_k=2, token=Secret.from_token(TOKEN))
    out = ranker.run(query=QUERY, documents=[Document(content=text) for text in DOCS])["documents"]
    assert [d.content for d in out] == [DOCS[i] for i in ORDER[:2]]
    assert out[0].score > out[1].score
    with pytest.raises(RuntimeError, match="401"):
        HuggingFaceTEIRanker(url=server.url, token=Secret.from_token("wrong"), max_retries=1).run(
            query=QUERY, documents=[Document(content=text) for text in DOCS]
        )


def test_cohere_sdk_reads_meta_and_sends_max_tokens_per_doc(server):
    import cohere

    client = cohere.ClientV2(base_url=server.url, api_key=TOKEN)
    v2 = client.rerank(model="rerank-v3.5", query=QUERY, documents=DOCS, top_n=2, max_tokens_per_doc=1)
    assert [r.index for r in v2.results] == [0, 1]  # one word each: no overlap left, the input order stays
    assert v2.meta.billed_units.search_units == 1 and v2.meta.api_version.version == "2"
    with pytest.raises(cohere.errors.BadRequestError):
        client.rerank(model="rerank-english-v2.0", query=QUERY, documents=DOCS)
    v1 = cohere.Client(base_url=server.url, api_key=TOKEN).rerank(
        query=QUERY, documents=[{"body": d, "id": str(i)} for i, d in enumerate(DOCS)], rank_fields=["body"],
        return_documents=True,
    )
    assert [r.index for r in v1.results] == ORDER
    assert v1.results[0].document.model_dump(exclude_none=True) == {"body": DOCS[1], "id": "1"}  # fields kept


def test_langchain_cohere_rerank(server):
    from langchain_cohere import CohereRerank
    from langchain_core.documents import Document

    reranker = CohereRerank(model="rerank-v3.5", base_url=server.url, cohere_api_key=TOKEN, top_n=3)
    out = reranker.compress_documents([Document(page_content=d) for d in DOCS], QUERY)
    assert [d.page_content for d in out] == [DOCS[i] for i in ORDER[:3]]
    scores = [d.metadata["relevance_score"] for d in out]
    assert scores == sorted(scores, reverse=True)


def test_llama_index_cohere_rerank(server):
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from llama_index.postprocessor.cohere_rerank import CohereRerank

    reranker = CohereRerank(model="rerank-v3.5", base_url=server.url, api_key=TOKEN, top_n=2)
    nodes = [NodeWithScore(node=TextNode(text=d), score=0.5) for d in DOCS]
    out = reranker.postprocess_nodes(nodes, query_bundle=QueryBundle(QUERY))
    assert [n.node.text for n in out] == [DOCS[i] for i in ORDER[:2]]
    assert out[0].score > out[1].score


def test_haystack_cohere_ranker(server):
    from haystack import Document
    from haystack.utils import Secret
    from haystack_integrations.components.rankers.cohere import CohereRanker

    ranker = CohereRanker(model="rerank-v3.5", api_key=Secret.from_token(TOKEN), api_base_url=server.url, top_k=2,
                          meta_fields_to_embed=["topic"])
    docs = [Document(content=d, meta={"topic": "animals" if "fox" in d else "other"}) for d in DOCS]
    out = ranker.run(query=QUERY, documents=docs)["documents"]  # sends max_tokens_per_doc=4096: capped
    assert [d.content for d in out] == [DOCS[i] for i in ORDER[:2]]
    assert out[0].score > out[1].score
