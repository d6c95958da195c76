"""``reasonrank mcp``: a Model Context Protocol server (the official ``mcp`` SDK) with one
``rerank`` tool over one shared ``ReasonRanker``. ``mcp`` is imported when a server is built."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from ..ranker import ReasonRanker

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

DESCRIPTION = (
    "Rerank documents by relevance to a query with a reasoning listwise reranker (ReasonRank). "
    "Returns the documents' indices best first, each with a score in (0, 1] and the model's reasoning."
)


class RankedDocument(BaseModel):
    index: int = Field(description="Position of the document in the input list.")
    score: float = Field(description="Relevance score in (0, 1], decreasing with rank.")
    reasoning: str | None = Field(None, description="The reasoning of the window that placed it (None: not seen).")


class RerankOutput(BaseModel):
    model: str
    results: list[RankedDocument] = Field(description="Best first; top_n of them when top_n is given.")
    cached: bool = Field(False, description="Answered from the ranker's result cache.")


def create_mcp_server(ranker: ReasonRanker, name: str = "reasonrank") -> MCPServer:
    """An MCP server whose ``rerank`` tool ranks on ``ranker`` (its calls share its engine)."""
    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError
    except ImportError as exc:
        raise ImportError("reasonrank mcp needs the mcp SDK: pip install 'reasonrank-plugins[mcp]'") from exc

    server = MCPServer(name, instructions=DESCRIPTION)

    @server.tool(name="rerank", description=DESCRIPTION)
    async def rerank(
        query: str, documents: list[str], top_n: int | None = None
    ) -> RerankOutput:
        """Rerank ``documents`` for ``query``; ``top_n`` keeps the best ``top_n``."""
        try:
            result = await ranker.arerank(query, documents, top_k=top_n)
        except ValueError as exc:
            raise ToolError(str(exc)) from exc
        hits = [RankedDocument(index=h.index, score=h.score, reasoning=h.reasoning) for h in result.hits]
        return RerankOutput(model=ranker.model, results=hits, cached=result.cached)

    return server


def serve_stdio(ranker: ReasonRanker) -> None:
    """Serve ``ranker``'s ``rerank`` tool over stdio until the client closes it; then close the ranker."""
    try:
        create_mcp_server(ranker).run("stdio")
    finally:
        ranker.close()
