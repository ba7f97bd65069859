<%--
  big.jsp?bytes=N streams N bytes where byte i is (i % 251), flushing every chunk.
  length=1 announces a Content-Length; without it the response is chunked.
--%>
<%@ page trimDirectiveWhitespaces="true" session="false" %>
<%
    long total = Long.parseLong(request.getParameter("bytes"));
    response.setContentType("application/octet-stream");
    if ("1".equals(request.getParameter("length"))) {
        response.setContentLengthLong(total);
    }
    // A whole number of periods, so every chunk starts the pattern at 0.
    byte[] chunk = new byte[251 * 256];
    for (int i = 0; i < chunk.length; i++) {
        chunk[i] = (byte) (i % 251);
    }
    jakarta.servlet.ServletOutputStream stream = response.getOutputStream();
    for (long sent = 0; sent < total; ) {
        int n = (int) Math.min(chunk.length, total - sent);
        stream.write(chunk, 0, n);
        stream.flush();
        sent += n;
    }
%>
